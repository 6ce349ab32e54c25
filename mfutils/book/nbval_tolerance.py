"""nbval's comparison, made robust to the last printed digit moving between processors.

    python -m pytest --nbval NOTEBOOK -p mfutils.book.nbval_tolerance --nbval-sanitize-with tests/nbval_sanitize.cfg

nbval compares each re-executed output with the committed one as strings, after the sanitize
file's substitutions (floats cut to two decimals, paths and times stripped). A book executed on
one CPU and re-checked on another failed on two kinds of difference that are not a change of
result (CI on a 2-core AMD EPYC, 2026-12-06, against a book executed on a Xeon):

* a float near zero moved in its last digit and a table column widened by one space
  (``'   20      -0.03      0.08'`` against ``'   20       -0.03      0.08'``);
* a small number printed as ``7.6e-06`` came back as ``7.5e-06``, which the sanitizer's
  two-decimal cut does not reach (its mantissa has one decimal).

This plugin keeps nbval's substitutions and replaces only the final string equality by
:func:`equivalent`: runs of whitespace compare equal whatever their length, and two numbers
written with a decimal point or an exponent are equal when they differ by at most one unit in
the last digit printed (of the coarser of the two). Integers (counts, indices, sizes) must be
equal, text must be equal, and a number that moves by two units or more in its last printed
digit still fails, so a real change at the rounding nbval uses is never hidden.
"""

from __future__ import annotations

import math
import re

#: a printed number: sign, digits, optional decimals, optional exponent (``-0.03``, ``7.6e-06``, ``1e+03``)
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
WHITESPACE = re.compile(r"\s+")


def _unit(token: str) -> float | None:
    """One unit in the last printed digit of ``token``; ``None`` for an integer (compared exactly)."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    if "." not in mantissa and not exponent:
        return None
    return 10.0 ** (int(exponent or 0) - decimals)


def _numbers_agree(a: str, b: str) -> bool:
    if a == b:
        return True
    ua, ub = _unit(a), _unit(b)
    if ua is None or ub is None:  # an integer on either side: only the same integer agrees
        return False
    # a hair of slack: the difference of two decimals is not exact in binary floating point
    return math.fabs(float(a) - float(b)) <= max(ua, ub) * (1 + 1e-9)


def _tokens(text: str) -> tuple[list[str], list[str]]:
    """(the text between numbers, whitespace runs collapsed and the ends stripped; the numbers)."""
    numbers = NUMBER.findall(text)
    texts = [WHITESPACE.sub(" ", t) for t in NUMBER.split(text)]
    texts[0], texts[-1] = texts[0].lstrip(), texts[-1].rstrip()
    return texts, numbers


def equivalent(reference: str, test: str) -> bool:
    """Whether two sanitized outputs say the same thing: the same words, the same integers and
    every decimal number within one unit of its last printed digit, whitespace runs aside."""
    if reference == test:
        return True
    (ref_text, ref_num), (test_text, test_num) = _tokens(reference), _tokens(test)
    return (ref_text == test_text and len(ref_num) == len(test_num)
            and all(_numbers_agree(a, b) for a, b in zip(ref_num, test_num)))


class ToleratedText(str):
    """A sanitized output whose ``==`` and ``!=`` are :func:`equivalent` (nbval compares with ``!=``)."""

    __hash__ = str.__hash__

    def __eq__(self, other):
        return equivalent(str(self), str(other)) if isinstance(other, str) else NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq


def _patch() -> None:
    from nbval.plugin import IPyNbCell

    if getattr(IPyNbCell.sanitize, "_tolerant", False):
        return
    plain = IPyNbCell.sanitize

    def sanitize(self, s):
        out = plain(self, s)
        return ToleratedText(out) if isinstance(out, str) else out

    sanitize._tolerant = True
    IPyNbCell.sanitize = sanitize


def pytest_configure(config):  # a pytest plugin: loaded with ``-p mfutils.book.nbval_tolerance``
    _patch()

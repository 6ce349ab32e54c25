"""nbval's comparison tolerates a processor's last-digit drift and column padding, and nothing more."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from mfutils.book.nbval_tolerance import equivalent

SANITIZE = Path(__file__).parent / "nbval_sanitize.cfg"


@pytest.mark.parametrize("ref, test", [
    # the two failures of CI on an AMD EPYC against the book executed on a Xeon (2026-12-06)
    ("   20      -0.03      0.08", "   20       -0.03      0.08"),
    ("constraint control: 7.6e-06", "constraint control: 7.5e-06"),
    ("0.13", "0.12"),                    # 0.1299999 and 0.1300001 cut to two decimals
    ("-0.00", "0.00"),                   # the sign of a zero
    ("a  b\n", "a b\n"),
    ("9.9e-06", "1.0e-05"),              # one unit across a power of ten
])
def test_drift_between_processors_is_tolerated(ref, test):
    assert equivalent(ref, test) and equivalent(test, ref)


@pytest.mark.parametrize("ref, test", [
    ("   20      -0.03      0.08", "   20      -0.03      0.10"),  # two units: a real change
    ("   20      -0.03      0.08", "   21      -0.03      0.08"),  # an integer (a count) moved
    ("7.6e-06", "7.4e-06"),
    ("7.6e-06", "7.6e-05"),
    ("reproduced 0.50", "partly 0.50"),  # a word changed
    ("0.50 0.51", "0.50"),               # a number went missing
    ("ab", "a b"),                       # whitespace that was not there
    ("25/32", "26/32"),
])
def test_a_real_change_still_fails(ref, test):
    assert not equivalent(ref, test) and not equivalent(test, ref)


def _notebook(path: Path, committed_output: str) -> Path:
    """A one-cell notebook printing a small table, whose committed output is ``committed_output``."""
    source = "print('   20      -0.03      0.08')\nprint('control 7.6e-06')"
    cell = nbformat.v4.new_code_cell(source, execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=committed_output)]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


def _nbval(path: Path, *plugin: str) -> int:
    cmd = [sys.executable, "-m", "pytest", "-q", "--nbval", str(path), "--nbval-sanitize-with", str(SANITIZE),
           "-p", "no:cacheprovider", *plugin]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=path.parent).returncode


@pytest.mark.slow
def test_nbval_with_the_plugin_passes_drift_and_fails_a_real_change(tmp_path):
    # the committed notebook as another processor would have written it: padding and last digits moved
    drifted = _notebook(tmp_path / "drifted.ipynb", "   20       -0.03      0.07\ncontrol 7.5e-06\n")
    assert _nbval(drifted) != 0, "without the plugin nbval should fail on this drift (else the test shows nothing)"
    assert _nbval(drifted, "-p", "mfutils.book.nbval_tolerance") == 0
    changed = _notebook(tmp_path / "changed.ipynb", "   20      -0.03      0.18\ncontrol 7.6e-06\n")
    assert _nbval(changed, "-p", "mfutils.book.nbval_tolerance") != 0


def _sanitized(text: str) -> str:
    """``text`` after the sanitize file's substitutions, in its order (as nbval applies them)."""
    import re

    from nbval.plugin import get_sanitize_patterns

    for regex, replace in get_sanitize_patterns(SANITIZE.read_text()):
        text = re.sub(regex, replace, text)
    return text


def test_a_committed_relative_path_matches_a_reexecution_elsewhere():
    # the runner writes paths relative to the checkout; nbval re-executes in some checkout
    committed = "PosixPath('results/00_behaviour/pretrained-organism/ccf5e72b4a')"
    reexecuted = "PosixPath('/tmp/ci/main/results/00_behaviour/pretrained-organism/ccf5e72b4a')"
    assert _sanitized(committed) == _sanitized(reexecuted)
    # a different run folder (other parameters) is still a difference
    assert _sanitized(committed) != _sanitized(reexecuted.replace("ccf5e72b4a", "0123456789"))

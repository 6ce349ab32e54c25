"""Chapter parameters as frozen, typed run specs that hash to their result folder.

A notebook's ``parameters`` cell holds plain defaults; papermill may inject new values after
it. The next cell calls :func:`mfutils.book.chapters.spec_from_namespace`, which collects every public variable the
two cells defined, rejects unknown names and ill-typed values loudly, and returns the spec.
The spec's fields decide the results folder (:meth:`RunSpec.run_dir`): the same parameters
always write to, and reproduce, the same place.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path

from mfutils.runs.paths import results_root


class ParameterError(TypeError):
    """An unknown, missing or ill-typed notebook parameter."""


# names IPython / papermill put in a kernel's namespace on their own
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}

@dataclass(frozen=True)
class RunSpec:
    """Parameters every chapter shares. Subclasses add their own fields."""

    chapter: str = ""
    #: the book's default model (:data:`mfutils.models.loading.PRETRAINED_ID`); "organism" is the tiny one
    model_id: str = "pretrained-organism"
    data: str = "synthetic"
    coco_dir: str = ""
    n_samples: int = 256
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 32
    #: the pretrained organism's 135 M parameters run about twice as fast on two threads as on one (measured)
    num_threads: int = 2
    # the paper's per-model item filter; off only for smoke runs of untrained (random-weight) models
    control_filter: bool = True
    output_dir: str = "results"

    # fields that change where results go but not what they are
    _NOT_HASHED: typing.ClassVar[tuple[str, ...]] = ("output_dir", "batch_size", "num_threads")

    def __post_init__(self) -> None:
        for f in fields(self):
            _check_type(self, f)
        if self.n_samples <= 0 or self.batch_size <= 0 or self.num_threads <= 0:
            raise ParameterError("n_samples, batch_size and num_threads must be positive")
        if self.seed < 0:  # numpy's generators take no negative seed: say so here, not in the kernel
            raise ParameterError(f"seed must be 0 or more, got {self.seed}")
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ParameterError(f"dtype must be float32, bfloat16 or float16, got {self.dtype!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Short hash of the fields that decide the results (not output_dir, batch size, threads).

        Batch size and thread count change the order of float additions only; results are
        compared for equality at fixed values of both, and the spec records them.
        """
        d = {k: v for k, v in self.to_dict().items() if k not in self._NOT_HASHED}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]

    def run_dir(self) -> Path:
        """``<output_dir>/<chapter>/<model slug>/<digest>``."""
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.model_id).name if "/" not in self.model_id or Path(self.model_id).exists() else self.model_id)
        return results_root(self.output_dir) / self.chapter / slug / self.digest()


def _check_type(spec, f: dataclasses.Field) -> None:
    value = getattr(spec, f.name)
    hint = typing.get_type_hints(type(spec))[f.name]
    allowed = _allowed_types(hint)
    if isinstance(value, bool) and bool not in allowed:
        raise ParameterError(f"parameter {f.name}={value!r}: expected {_name(hint)}, got bool")
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        object.__setattr__(spec, f.name, float(value))
        return
    if not isinstance(value, tuple(allowed)):
        raise ParameterError(f"parameter {f.name}={value!r}: expected {_name(hint)}, got {type(value).__name__}")


def _allowed_types(hint) -> tuple[type, ...]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for a in typing.get_args(hint) for t in _allowed_types(a))
    if origin is not None:
        return (origin,)
    return (type(None),) if hint is None else (hint,)


def _name(hint) -> str:
    return getattr(hint, "__name__", str(hint))


def spec_from_namespace(spec_cls: type[RunSpec], namespace: dict, chapter: str,
                        other_chapters: frozenset[str] = frozenset()) -> RunSpec:
    """Build ``spec_cls`` from a notebook's globals after its parameters cell(s).

    Every public, non-module, non-callable global must be a field of ``spec_cls`` or a name in
    ``other_chapters`` (another chapter's parameter, ignored here); anything else is an unknown
    parameter (e.g. a misspelt ``-p`` name) and raises. The notebooks call
    :func:`mfutils.book.chapters.spec_from_namespace`, which passes every chapter's names.
    """
    names = {f.name for f in fields(spec_cls)} - {"chapter"}
    given = {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_")
        and k not in _KERNEL_NAMES
        and not isinstance(v, (types.ModuleType, type))
        and not callable(v)
    }
    # a parameter of another chapter (e.g. n_random from a family's parameters file) does not
    # apply here; a name no chapter knows is a typo and fails
    unknown = sorted(set(given) - names - other_chapters)
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {unknown} for chapter {chapter}; this chapter takes {sorted(names)}"
        )
    return spec_cls(chapter=chapter, **{k: v for k, v in given.items() if k in names})

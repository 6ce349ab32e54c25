from __future__ import annotations

import os

import pytest

from mfutils.runs.params import ParameterError, RunSpec, spec_from_namespace


def test_unknown_parameter_fails_loudly():
    ns = {"model_id": "organism", "n_sampels": 10, "os": os}
    with pytest.raises(ParameterError, match="n_sampels"):
        spec_from_namespace(RunSpec, ns, "00_x")


def test_ill_typed_parameter_fails_loudly():
    with pytest.raises(ParameterError, match="n_samples"):
        spec_from_namespace(RunSpec, {"n_samples": "many"}, "00_x")
    with pytest.raises(ParameterError, match="seed"):
        RunSpec(chapter="c", seed=True)


def test_int_is_accepted_for_float_fields():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class S(RunSpec):
        alpha: float = 1.5

    assert spec_from_namespace(S, {"alpha": 2}, "c").alpha == 2.0


def test_run_dir_is_derived_from_parameters(tmp_path):
    a = RunSpec(chapter="c", seed=1, output_dir=str(tmp_path))
    b = RunSpec(chapter="c", seed=1, output_dir=str(tmp_path), batch_size=7)
    c = RunSpec(chapter="c", seed=2, output_dir=str(tmp_path))
    assert a.run_dir() == b.run_dir() != c.run_dir()
    assert a.run_dir().parent.name == "pretrained-organism"
    hub = RunSpec(chapter="c", model_id="llava-hf/llava-1.5-7b-hf", output_dir=str(tmp_path))
    assert hub.run_dir().parent.name == "llava-hf_llava-1.5-7b-hf"


def test_another_chapters_parameter_is_not_applied_but_a_typo_fails():
    """One parameters file serves every chapter: chapter 00 ignores chapter 05's n_random."""
    from mfutils.book import chapters
    from mfutils.findings.behaviour import BehaviourSpec

    spec = chapters.spec_from_namespace(BehaviourSpec, {"n_random": 5, "exhaustive": False}, "00_behaviour")
    assert not hasattr(spec, "n_random")
    with pytest.raises(ParameterError, match="n_randum"):
        chapters.spec_from_namespace(BehaviourSpec, {"n_randum": 5}, "00_behaviour")
    # the package level knows no chapter: another chapter's names are the caller's to give
    with pytest.raises(ParameterError, match="n_random"):
        spec_from_namespace(BehaviourSpec, {"n_random": 5}, "00_behaviour")


def test_each_default_is_the_notebooks():
    """A spec's defaults and its notebook's parameters cell say the same (they drifted once: 256 vs 400)."""
    from dataclasses import fields

    from mfutils.book.chapters import REGISTRY, notebook_defaults

    for ch in REGISTRY:
        nb = notebook_defaults(ch.name)
        spec = {f.name: f.default for f in fields(ch.spec) if f.name != "chapter"}
        assert set(nb) == set(spec), f"{ch.name}: parameters cell and spec name different parameters"
        differ = {k: (spec[k], nb[k]) for k in nb if nb[k] != spec[k]}
        assert not differ, f"{ch.name}: spec default vs notebook: {differ}"

"""What changes between the book's two models: the same measurements read off each organism's finished runs.

Nothing here runs a model: every cell comes from a chapter's ``results.json`` or curves for
the parameters that model's run used (the book's defaults, or the comparison run's,
:func:`mfutils.book.chapters.comparison_overrides`). A chapter without a finished run gives
"not run".
"""

from __future__ import annotations

from typing import Callable

import pandas as pd

from mfutils.findings import rules
from mfutils.book.chapters import MODEL_LABELS, chapter_spec, comparison_overrides, notebook_defaults
from mfutils.runs.results import IncompleteResultsError, load_run


def _run(chapter: str, params: dict) -> dict | None:
    try:
        return load_run(chapter_spec(chapter, **params))
    except IncompleteResultsError:
        return None


def n_layers(model_id: str) -> int:
    """The text decoder's depth, from the model's config (no weights are read)."""
    from mfutils.models.loading import check_model

    return check_model(model_id)[1].get_text_config().num_hidden_layers


def depth(layer: int, n: int) -> float:
    """Relative depth of a layer's middle, as the chapters' curves plot it (:func:`mfutils.findings.rules.depth`)."""
    return float(rules.depth(layer, n))


def readings(params_for: Callable[[str], dict]) -> dict:
    """One model's finished runs, read once: its depth ``L``; where the lens margin emerges per
    direction (``emerge``, ``None`` where chapter 2 has no run or it never emerges); its
    arbitration heads (``heads``, ``None`` without a chapter-4 run); and the curve row of the
    knockout that moves the answer most per direction (``knockout``, ``None`` without a
    chapter-1 run). ``params_for``: chapter -> the parameters its run used on top of the
    notebook defaults."""
    model_id = params_for("00_behaviour").get("model_id") or notebook_defaults("00_behaviour")["model_id"]
    arb = _run("02_deep_arbitration", params_for("02_deep_arbitration"))
    heads = _run("04_sparse_heads", params_for("04_sparse_heads"))
    routing = _run("01_shallow_routing", params_for("01_shallow_routing"))
    curves = pd.read_parquet(routing["dir"] / "curves.parquet") if routing else None
    knockout = {}
    for target in ("image", "text"):
        if curves is not None:
            c = curves[curves["target"] == target]
            knockout[target] = c.loc[c["log_odds"].abs().idxmax()]
        else:
            knockout[target] = None
    return {"L": n_layers(model_id), "ran_ch02": arb is not None,
            "emerge": {t: (arb or {}).get("results", {}).get("emerge_layer", {}).get(t) for t in ("image", "text")},
            "heads": None if heads is None else heads["results"].get("arbitration_heads", []),
            "knockout": knockout}


def depths(params_for: Callable[[str], dict]) -> dict[str, float | None]:
    """The relative depths the sentences of :func:`depth_summary` compare: where the lens
    margin emerges (per direction), the median arbitration head, and the knockout that moves
    the answer most (per direction); ``None`` where the chapter has no finished run."""
    import numpy as np

    r = readings(params_for)
    out: dict[str, float | None] = {}
    for target in ("image", "text"):
        layer = r["emerge"][target]
        out[f"margin {target}"] = None if layer is None else depth(layer, r["L"])
    out["heads"] = float(np.median([depth(l, r["L"]) for l, _ in r["heads"]])) if r["heads"] else None
    for target in ("image", "text"):
        row = r["knockout"][target]
        out[f"knockout {target}"] = None if row is None else float(row["depth"])
    return out


#: the front page's names of the shipped models (the chapters' legends keep plotting.model_name's)
FRONT_NAMES = {"pretrained-organism": "SmolLM2 organism", "gemma-organism": "Gemma organism", "organism": "tiny organism"}


#: what each model is, in one phrase, for the front page's sentences that name the models
DESCRIPTIONS = {
    "pretrained-organism": "a small LLaVA around SmolLM2-135M-Instruct, a pretrained, instruction-tuned language model",
    "gemma-organism": "the same build around Gemma-3-270M, a pretrained base model of another family (Google's), "
                      "not instruction-tuned",
    "organism": "an 8-layer language model trained from scratch on the conflicts alone",
}


def models_sentence(**overrides) -> str:
    """The front page's sentence naming the book's model and the comparison model, with what each is."""
    book, compared = _models(overrides)
    name = lambda m: f"**{front_name(m)}**" + (f", {DESCRIPTIONS[m]}" if m in DESCRIPTIONS else "")
    return f"The book's model is the {name(book)}; beside it, for comparison, runs the {name(compared)}."


def front_name(model_id: str) -> str:
    from mfutils.book.plotting import model_name

    return FRONT_NAMES.get(model_id, model_name(model_id))


def _models(overrides: dict) -> tuple[str, str]:
    """The book's model id and the comparison run's."""
    book = overrides.get("model_id") or notebook_defaults("00_behaviour")["model_id"]
    return book, comparison_overrides("00_behaviour").get("model_id", "comparison")


def depth_summary(**overrides) -> str:
    """Two or three sentences, in Markdown, saying from the measurements where the book's model
    and the comparison model differ in depth (generated, never typed)."""
    book = depths(lambda ch: overrides)
    tiny = depths(lambda ch: {**overrides, **comparison_overrides(ch)})
    first, second = (front_name(m) for m in _models(overrides))

    def pair(key: str) -> str | None:
        a, b = book.get(key), tiny.get(key)
        return None if a is None or b is None else f"{a:.2f} against {b:.2f}"

    parts = []
    m = [f"{pair(f'margin {t}')} when it follows the {t}" for t in ("image", "text") if pair(f"margin {t}")]
    if m:
        parts.append("The logit lens separates the two answers at relative depth " + " and ".join(m)
                     + f" ({first} first, {second} second).")
    if pair("heads"):
        parts.append(f"The median arbitration head sits at depth {pair('heads')}.")
    k = [f"{pair(f'knockout {t}')} ({t} following)" for t in ("image", "text") if pair(f"knockout {t}")]
    if k:
        parts.append("The single attention cut that moves the answer most lies at depth " + " and ".join(k) + ".")
    return " ".join(parts) if parts else "Neither model has finished runs of chapters 1, 2 and 4 for these parameters."


def measurements(params_for: Callable[[str], dict]) -> dict[str, str]:
    """Where one model's lens margin emerges, where its arbitration heads sit, which knockout
    moves its answer most, each with layer and relative depth (:func:`readings`, as text)."""
    r = readings(params_for)
    L = r["L"]
    out: dict[str, str] = {"decoder layers": str(L)}
    for target in ("image", "text"):
        key = f"follow the {target}: the lens margin first exceeds half its final value (ch. 2)"
        layer = r["emerge"][target]
        out[key] = "not run" if not r["ran_ch02"] else ("never" if layer is None else f"layer {layer} (depth {depth(layer, L):.2f})")
    key = "arbitration heads (ch. 4's rule): where they sit"
    hs = r["heads"]
    if hs is None:
        out[key] = "not run"
    else:
        layers = sorted(l for l, _ in hs)
        out[key] = "none" if not hs else (f"{len(hs)} heads in layers {', '.join(map(str, sorted(set(layers))))} "
                                          f"(depth {depth(layers[0], L):.2f}–{depth(layers[-1], L):.2f})")
    for target in ("image", "text"):
        key = f"follow the {target}: the knockout that moves the answer most (ch. 1, Δ log-odds)"
        row = r["knockout"][target]
        out[key] = "not run" if row is None else (
            f"{row['edge']} at layer {int(row['layer'])} (depth {row['depth']:.2f}): {row['log_odds']:+.2f}")
    return out


def depth_table(**overrides) -> pd.DataFrame:
    """One row per measurement, one column per model: the book's run (its defaults plus
    ``overrides``) and the comparison run."""
    book_id, compared = _models(overrides)
    book = MODEL_LABELS.get(book_id, book_id)
    cols = {book: measurements(lambda ch: overrides),
            MODEL_LABELS.get(compared, compared): measurements(lambda ch: {**overrides, **comparison_overrides(ch)})}
    return pd.DataFrame(cols).rename_axis("measurement").reset_index()


def arbitration_maps(**overrides) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Chapter 1's route map of each model (the book's, then the comparison's; a model without a
    finished chapter-1 run is left out) and its "how this model arbitrates" paragraph
    (:func:`mfutils.book.discussion.how_it_arbitrates`), for the front page."""
    from mfutils.book.discussion import how_it_arbitrates
    from mfutils.findings.reference import paper_curves
    from mfutils.findings.routing import paper_route_marks

    marks = paper_route_marks(paper_curves(model="Qwen2.5-VL-7B"))
    maps, paragraphs = {}, []
    for params in (dict(overrides), {**overrides, **comparison_overrides("01_shallow_routing")}):
        run = _run("01_shallow_routing", params)
        if run is None or not (run["dir"] / "route_map.csv").exists():
            continue
        model = params.get("model_id") or notebook_defaults("01_shallow_routing")["model_id"]
        route = pd.read_csv(run["dir"] / "route_map.csv")
        patching = pd.read_csv(run["dir"] / "patching.csv") if (run["dir"] / "patching.csv").exists() else None
        maps[front_name(model)] = route
        paragraphs.append(how_it_arbitrates(front_name(model), route, patching, n_layers(model), marks))
    return maps, paragraphs


def finding_states(table: pd.DataFrame) -> dict[int, tuple[str, str]]:
    """Chapter number -> ``(state, count)`` for one model's :func:`mfutils.book.chapters.summary_table`:
    :func:`mfutils.findings.rules.finding_holds` over the chapter's paper claims (chapter 0: its
    targets), and how many of them show the effect ("2 of 3 reproduced", with "1 partly" added
    where some do in part: *in part* never stands beside "0 of 8 reproduced" alone); a chapter
    without a finished run is ``("not run", "no finished run")``."""
    out = {}
    for ch, rows in table.groupby("ch.", sort=True):
        if set(rows["verdict"]) == {"not run"}:
            out[int(ch)] = ("not run", "no finished run")
            continue
        paper = rows[(rows["rule"] != "") & ~rows["rule"].isin(rules.OWN_CLAIMS)]
        claims = paper if len(paper) else rows[rows["rule"] == ""]
        verdicts = list(claims["verdict"])
        word = "reproduced" if len(paper) else "met"
        shown = sum(v in rules.AGREES for v in verdicts)
        partly = sum(v in rules.PARTLY for v in verdicts)
        count = f"{shown} of {len(verdicts)} {word}" + (f", {partly} partly" if partly else "")
        out[int(ch)] = (rules.finding_holds(verdicts), count)
    return out


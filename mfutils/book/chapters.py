"""The book's chapters: their spec classes, their notebooks' default parameters, and the
reproduction summary the front page builds from their finished results.

The front page never holds a number of its own: :func:`summary_table` rebuilds each
chapter's spec from the notebook's ``parameters`` cell (plus any overrides), finds the
run folder that spec hashes to, and reads the verdicts that run wrote.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from mfutils.findings.arbitration import ArbitrationSpec
from mfutils.findings.behaviour import BehaviourSpec
from mfutils.findings.causal import CausalSpec
from mfutils.findings.head_scores import HeadsSpec
from mfutils.findings.inertia import InertiaSpec
from mfutils.runs import params as run_params
from mfutils.runs.params import ParameterError, RunSpec
from mfutils.findings import rules
from mfutils.runs.paths import project_root
from mfutils.runs.results import IncompleteResultsError, load_run
from mfutils.findings.routing import RoutingSpec
from mfutils.book.sources import SUFFIX, read_source

@dataclass(frozen=True)
class Chapter:
    """One chapter of the book: the one place its number, title and paper reference live.

    Headings, the table of contents, the front page and the prose all use :attr:`heading` and
    :attr:`number` (a test checks the sources against this table); the claims and the paper's
    numbers are the chapter's rows of :data:`mfutils.findings.rules.RULES`.
    """

    name: str
    number: int
    spec: type[RunSpec]
    title: str
    #: which finding of the paper's story it covers (the brief's order: 1 routing … 5 interventions)
    finding: str
    #: where the paper states it (its own section and figure names)
    paper: str
    #: what would decide the chapter's question on a real model (closes "What this run shows")
    decide: str = ""
    #: the finding in a few plain words (the front page's one line per finding)
    gist: str = ""

    @property
    def heading(self) -> str:
        return f"{self.number} · {self.title}"


REGISTRY: tuple[Chapter, ...] = (
    Chapter("00_behaviour", 0, BehaviourSpec, "Modality following at baseline", "baseline",
            "the modality-following ratio and the per-model item filter",
            gist="The model answers from the modality the instruction names (the baseline every finding needs)",
            decide="Chapter 0 is the gate for the rest: on a real MLLM, run it with the family's parameter file and the paper's items (`data` = a file from `../shared/data`); a model that does not follow the instruction on most filtered conflicts cannot show how it arbitrates. The paper's item counts per model (its filter's yield) are the only public baseline."),
    Chapter("01_shallow_routing", 1, RoutingSpec, "Shallow routing into the instruction anchors", "finding 1",
            "Figures 2 and 3(a) (attention knockout; the authors' rebuttal figures, our labels A1–A3) and two position controls (A8, A9)",
            gist="Early attention routes image and text cues into the instruction tokens, whichever modality is named",
            decide="Run this chapter on Qwen2.5-VL-7B (`notebooks/params/qwen2.5-vl-7b.yaml`), the model the paper's curves come from, with `window` 3: the paper's routes into the instruction tokens either appear at depth 0.45–0.60 with confidence intervals that exclude zero, beating the routes that bypass them, or they do not."),
    Chapter("02_deep_arbitration", 2, ArbitrationSpec, "Deep arbitration", "finding 2",
            "the logit lens at the last position (rebuttal figure, our label A11) and LDAR at the instruction tokens",
            gist="Deep attention layers resolve the conflict as the instruction says",
            decide="On Qwen2.5-VL-7B the paper reports a lens margin near zero until depth 0.65 and LDAR above 95% at the instruction tokens in deep layers. Re-running this chapter there, with the chance baseline and the failed samples this chapter adds, tells whether that LDAR is more than the following ratio itself."),
    Chapter("03_mlp_inertia", 3, InertiaSpec, "MLP inertia", "finding 3",
            "MLP contributions on average and on failed samples (rebuttal figures, our labels A12–A14)",
            gist="MLP layers push against the instructed answer",
            decide="The claim is about failed samples, so it needs a model that fails often enough under the paper's own instructions: at least 30 failures per direction on the paper's items. The causal check (mean-ablating the late MLPs) then says whether the MLPs' push against the answer is the cause of failure or a correlate."),
    Chapter("04_sparse_heads", 4, HeadsSpec, "Sparse arbitration heads", "finding 4",
            "about 5% of heads (≈ 39 of 784 on Qwen2.5-VL-7B)",
            gist="A few attention heads (about 5%) carry the arbitration",
            decide="On a 7B model, run with `exhaustive: false` (the fast scorer, with exact ablation of its shortlist), and compare the arbitration heads' depths and their share of the effect with the paper's ≈ 39 of 784 heads. Whether those heads sit in the deep layers, as the paper's arbitration story needs, decides it."),
    Chapter("05_causal_interventions", 5, CausalSpec, "Causal interventions", "finding 5",
            "blocking, amplification and general ability",
            gist="Blocking those heads cuts following; amplifying them repairs failures; general ability survives",
            decide="The paper's 60% drop and 60% repair are for its own head sets on 7B models. Run this chapter on one of them with `n_random` ≥ 50 (the default): the verdict then says whether blocking the arbitration heads cuts following more than random heads from the same layers, while the controls stay, and whether α = 2 repairs failures without breaking successes."),
)

#: chapter name -> its :class:`Chapter`, in the book's order
CHAPTERS: dict[str, Chapter] = {c.name: c for c in REGISTRY}


def entry(name: str) -> Chapter:
    """The registry entry of ``name`` (a chapter name such as ``"02_deep_arbitration"``)."""
    if name not in CHAPTERS:
        raise ParameterError(f"unknown chapter {name!r}; chapters: {sorted(CHAPTERS)}")
    return CHAPTERS[name]


def notebook_path(chapter: str) -> Path:
    """The chapter's source, MyST Markdown (:mod:`mfutils.book.sources`)."""
    return project_root() / "notebooks" / f"{chapter}{SUFFIX}"


def notebook_defaults(chapter: str) -> dict:
    """The literal assignments of the notebook's cell tagged ``parameters``."""
    nb = read_source(notebook_path(chapter))
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell["source"])
            return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
                    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)}
    raise ValueError(f"{notebook_path(chapter)} has no cell tagged 'parameters'")


def contents_markdown(prefix: str = "chapters/") -> str:
    """The front page's list of chapters: heading, the finding it covers, link (from :data:`REGISTRY`).

    The links point at the built pages (``.html``): the book renders a cell's Markdown output
    as CommonMark, where Sphinx does not resolve links to notebooks."""
    return "\n".join(f"- [{c.heading}]({prefix}{c.name}.html) — {c.finding}: {c.paper}" for c in REGISTRY)


def chapter_spec(chapter: str, **overrides) -> RunSpec:
    """The spec a papermill run of ``chapter`` with ``overrides`` (``-p`` values) would build.

    Overrides a chapter does not take (e.g. ``n_random`` for chapter 01) are ignored, as they
    are when one parameters file serves every chapter.
    """
    spec_cls = entry(chapter).spec
    known = {f.name for f in fields(spec_cls)} - {"chapter"}
    params = {**notebook_defaults(chapter), **{k: v for k, v in overrides.items() if k in known}}
    return spec_cls(chapter=chapter, **params)


def reproduce_command(chapter: str, overrides: dict) -> str:
    """The runner command that re-runs ``chapter`` with ``overrides``, naming only the
    parameters the chapter takes whose value differs from its notebook's default."""
    defaults = notebook_defaults(chapter)
    changed = {k: v for k, v in overrides.items() if k in defaults and defaults[k] != v}
    ps = " ".join(f"-p {k} {v}" for k, v in changed.items())
    return f"python -m mfutils execute {chapter[:2]}" + (f" {ps}" if ps else "")


def summary_table(per_chapter: dict[str, dict] | None = None, **overrides) -> pd.DataFrame:
    """One row per verdict of every chapter's finished run for these parameters.

    ``per_chapter``: chapter name -> parameters for that chapter only, on top of ``overrides``
    (the comparison run's sample counts, :func:`comparison_parameters`).

    Columns: ch. (the chapter's number), finding, chapter, claim, paper, ours, verdict, command. A chapter with no finished
    run gets one row saying so (its verdict is ``not run``), never a stale or partial number.
    """
    rows = []
    for ch in REGISTRY:
        chapter, finding, title = ch.name, ch.finding, ch.heading
        spec = chapter_spec(chapter, **{**overrides, **(per_chapter or {}).get(chapter, {})})
        cmd = reproduce_command(chapter, overrides)
        try:
            res = load_run(spec).get("results", {})
        except IncompleteResultsError as err:
            rows.append({"ch.": ch.number, "finding": finding, "chapter": title, "claim": "—", "paper": "—",
                         "ours": f"no finished run ({err.__class__.__name__})", "verdict": "not run", "command": cmd,
                         "rule": ""})
            continue
        for v in res.get("verdicts", []):
            rows.append({"ch.": ch.number, "finding": finding, "chapter": title, "claim": v["claim"], "paper": v.get("paper", "—"),
                         "ours": v["ours"], "verdict": v["verdict"], "command": cmd, "rule": v.get("rule", "")})
    return pd.DataFrame(rows)


#: the comparison model's run beside the book's (``python -m mfutils compare``)
COMPARISON = Path("notebooks") / "comparison.yaml"


def comparison_parameters() -> tuple[dict, dict[str, dict]]:
    """``(parameters for every chapter, chapter -> its own parameters)`` of the comparison run
    (:data:`COMPARISON`), each on top of the chapter's notebook defaults."""
    import yaml

    raw = yaml.safe_load((project_root() / COMPARISON).read_text()) or {}
    per = raw.pop("chapters", {}) or {}
    unknown = set(per) - set(CHAPTERS)
    if unknown:
        raise ParameterError(f"{COMPARISON}: unknown chapters {sorted(unknown)}; chapters: {sorted(CHAPTERS)}")
    return raw, per


def comparison_overrides(chapter: str) -> dict:
    """The parameters the comparison run executes ``chapter`` with (beside its notebook defaults)."""
    common, per = comparison_parameters()
    return {**common, **per.get(chapter, {})}


#: the front page's model columns, left to right (the paper's own is the "paper" column)
MODEL_LABELS = {"pretrained-organism": "SmolLM2 organism (SmolLM2-135M-Instruct)",
                "gemma-organism": "Gemma organism (Gemma-3-270M)", "organism": "tiny organism (from scratch)"}


def comparison_table(**overrides) -> pd.DataFrame:
    """The reproduction table with one column per model, each cell ``verdict: ours``: the book's
    run (its defaults plus ``overrides``) and the comparison run (:func:`comparison_parameters`
    on top of ``overrides``).

    Rows are matched on (chapter, claim): every claim comes from one rule table
    (:data:`mfutils.findings.rules.RULES`), so each model is judged on it by the same rule.
    """
    common, per = comparison_parameters()
    # the page's other parameters (data, seed, output folder) hold for both runs
    runs = [(overrides, None), ({**overrides, **common}, per)]
    merged = None
    for params, chapter_params in runs:
        t = summary_table(per_chapter=chapter_params, **params)
        model = params.get("model_id") or notebook_defaults(REGISTRY[0].name)["model_id"]
        label = MODEL_LABELS.get(model, model)
        t[label] = t["verdict"] + ": " + t["ours"]
        t = t[["ch.", "claim", "paper", label]].drop_duplicates(["ch.", "claim"])
        if merged is None:
            merged = t.assign(_row=range(len(t)))
        else:
            merged = merged.merge(t.drop(columns="paper"), on=["ch.", "claim"], how="outer", sort=False)
    # the book's row order (the rule table's), claims only the comparison has last in their chapter
    merged = merged.fillna({"_row": len(merged)}).fillna("—").sort_values(["ch.", "_row"], kind="stable")
    return merged.drop(columns="_row").reset_index(drop=True)


def spec_from_namespace(spec_cls: type[RunSpec], namespace: dict, chapter: str) -> RunSpec:
    """A chapter notebook's spec from its globals (:func:`mfutils.runs.params.spec_from_namespace`):
    a parameter another chapter takes is ignored, a name no chapter takes fails."""
    return run_params.spec_from_namespace(spec_cls, namespace, chapter, frozenset(all_parameters()))


def all_parameters() -> set[str]:
    """Every parameter name some chapter takes."""
    return {f.name for c in REGISTRY for f in fields(c.spec)} - {"chapter"}


def verdict_counts(table: pd.DataFrame) -> dict[str, int]:
    return {k: int(v) for k, v in table["verdict"].value_counts().items()}


def ordered_verdicts(counts) -> list[str]:
    """The verdicts of ``counts`` in the book's order (:data:`mfutils.findings.rules.VERDICT_ORDER`,
    then "not run", then any other word alphabetically)."""
    known = rules.VERDICT_ORDER + ("not run",)
    return [v for v in known if v in counts] + sorted(set(counts) - set(known))


def verdict_sentence(table: pd.DataFrame) -> str:
    """The summary table's verdicts as a sentence: "Of 20 claims, 3 are reproduced, …"."""
    counts = verdict_counts(table)
    parts = [f"{counts[v]} {v}" for v in ordered_verdicts(counts)]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"**Of the {len(table)} claims below: {listed}.**"


#: the README's generated block lies between these two lines (``python -m mfutils readme`` rewrites it)
GLANCE_BEGIN = "<!-- results at a glance: generated by `python -m mfutils readme` from results/ -->"
GLANCE_END = "<!-- end of the generated block -->"


def glance_markdown(**overrides) -> str:
    """The README's results at a glance: per chapter, how many of its claims each model's
    finished run gives each verdict, counted from the same result files as the front page's table."""
    table = comparison_table(**overrides)
    models = [c for c in table.columns if c not in ("ch.", "claim", "paper")]

    def cell(cells: pd.Series) -> str:
        words = cells.str.split(":").str[0].value_counts()
        order = [v for v in rules.VERDICT_ORDER if v in words] + sorted(set(words.index) - set(rules.VERDICT_ORDER))
        return " · ".join(f"{words[v]} {v}" for v in order)

    lines = ["| chapter | claims | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
    for c in REGISTRY:
        rows = table[table["ch."] == c.number]
        lines.append(f"| {c.heading} | {len(rows)} | " + " | ".join(cell(rows[m]) for m in models) + " |")
    return "\n".join(lines)


def write_glance(readme: Path | None = None) -> bool:
    """Rewrite the README's generated block from the results; returns whether it changed."""
    readme = readme or project_root() / "README.md"
    text = readme.read_text()
    if GLANCE_BEGIN not in text or GLANCE_END not in text:
        raise ValueError(f"{readme} lacks the lines that bound its generated block:\n{GLANCE_BEGIN}\n{GLANCE_END}")
    head, _, rest = text.partition(GLANCE_BEGIN + "\n")
    _, _, tail = rest.partition(GLANCE_END)
    new = f"{head}{GLANCE_BEGIN}\n{glance_markdown()}\n{GLANCE_END}{tail}"
    readme.write_text(new)
    return new != text


def commands_markdown(overrides: dict) -> str:
    """One command per chapter that re-runs it with the front page's parameters."""
    lines = [f"{reproduce_command(c.name, overrides)}   # {c.heading}" for c in REGISTRY]
    compared = comparison_overrides(REGISTRY[0].name).get("model_id", "the comparison model")
    return ("Re-run a chapter:\n\n```bash\n" + "\n".join(lines) + "\n```\n\n"
            f"and the same chapter on the comparison model ({compared}, with `{COMPARISON}`'s parameters): "
            f"`python -m mfutils compare {REGISTRY[-1].name[:2]}`.")


def plain_summary(verdict: pd.DataFrame) -> str:
    """A sentence or two, in Markdown, saying what the verdict table says (generated, never typed)."""
    own = verdict[verdict["rule"].isin(rules.OWN_HYPOTHESES)] if "rule" in verdict.columns else verdict.iloc[0:0]
    verdict = verdict.drop(index=own.index)
    n = len(verdict)
    groups = {v: verdict[verdict["verdict"] == v]["claim"].tolist() for v in verdict["verdict"].unique()}
    good = sum(len(groups.get(v, [])) for v in rules.AGREES)
    parts = [f"**In this run the model shows {good} of the {n} claims below.**"]
    for label in rules.PARTLY + rules.DISAGREES + rules.UNMEASURED:
        if groups.get(label):
            parts.append(f"*{label.capitalize()}:* " + "; ".join(c.rstrip(".") for c in groups[label]) + ".")
    parts += [f"*Our own hypothesis ({r.rule}), apart from the paper's claims: {r.verdict}.*" for r in own.itertuples()]
    from mfutils.book.tables import plain

    return plain(" ".join(parts))

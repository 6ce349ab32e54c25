"""Chapter 03: do MLP layers push against the instructed answer? (Attention vs MLP logit changes.)

Correlational part: :func:`mfutils.findings.lens.per_layer` contributions split by followed / failed
samples and direction, on a pool of the model's own failures
(:func:`mfutils.findings.failures.failure_pool`). Causal part: mean-ablate the MLPs of the rule's
late band and measure failures repaired, successes broken and the paired change in the MF
ratio; the causal result enters the failure claims' verdicts (:mod:`mfutils.findings.rules`).
"""

from __future__ import annotations

import typing

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mfutils.engine.encoding import batches, encode
from mfutils.findings.evaluation import run_readouts
from mfutils.engine.interventions import capture, mean_ablate_mlps
from mfutils.findings.lens import per_layer, summarize_layers
from mfutils.findings import rules
from mfutils.runs.params import RunSpec


@dataclass(frozen=True)
class InertiaSpec(RunSpec):
    chapter: str = "03_mlp_inertia"
    #: the files a finished run holds (:meth:`mfutils.runs.results.RunWriter.finish` refuses to finish without them)
    OUTPUTS: typing.ClassVar[tuple[str, ...]] = (
        "contributions.csv", "contributions.parquet", "failed_vs_followed.csv", "failed_vs_followed.png",
        "failure_pool.csv", "failure_pool.parquet",
        "mlp_ablation.csv", "mlp_ablation.parquet", "mlp_average.csv", "mlp_average.png", "results.json",
        "stage1.csv", "stage1.parquet", "stage1_failures.csv", "stage1_failures.png",
    )
    n_samples: int = 64
    n_boot: int = 500


def contributions_table(meta: pd.DataFrame, tr, n_layers: int, n_boot: int = 500) -> pd.DataFrame:
    """Long table: per (direction, outcome, sublayer, quantity) the per-layer mean and CI."""
    parts = per_layer(tr)
    outcome = np.where(meta["decision"] == 1, "followed", np.where(meta["decision"] == -1, "failed", "neither"))
    rows = []
    for target in ("image", "text"):
        for out in ("followed", "failed", "all"):
            sel = (meta["target"] == target).to_numpy() & ((outcome == out) if out != "all" else True)
            for sub in ("attn", "mlp"):
                for q in ("follow", "comp", "margin"):
                    s = summarize_layers(parts[f"{q}_{sub}"][sel], n_layers, "value", n_boot)
                    rows.append(s.assign(target=target, outcome=out, sublayer=sub, quantity=q))
    return pd.concat(rows, ignore_index=True)


@torch.no_grad()
def mlp_means(bundle, items, layers, batch_size: int) -> dict[int, torch.Tensor]:
    """Mean MLP output over all real (non-pad) positions of ``items``, per layer (``(d,)``)."""
    ad = bundle.adapter
    sums = {l: torch.zeros(ad.hidden_size) for l in layers}
    count = 0
    for chunk in batches(items, batch_size):
        batch = encode(bundle, chunk).to(bundle.device, bundle.dtype)
        T = batch.inputs["input_ids"].shape[1]
        pos = torch.arange(T)[None].expand(len(chunk), -1).to(bundle.device)
        with capture(ad, pos, points=("mlp",)) as store:
            bundle.model.model(**batch.inputs, use_cache=False)  # the decoder only: no logits are read
        real = batch.inputs["attention_mask"].bool()
        for l in layers:
            sums[l] += store["mlp"][l][real].float().sum(0).cpu()
        count += int(real.sum())
    return {l: (s / count).to(bundle.device) for l, s in sums.items()}


def ablate_deep_mlps(bundle, items, means: dict[int, torch.Tensor], batch_size: int) -> pd.DataFrame:
    """Readouts with the MLPs of ``means``' layers replaced by their mean output
    (:func:`mlp_means`, fitted on a disjoint split)."""
    return run_readouts(bundle, items, batch_size, intervention=lambda batch: mean_ablate_mlps(bundle.adapter, means))


def ablation_effect(base: pd.DataFrame, ablated: pd.DataFrame) -> pd.DataFrame:
    """Per direction: failures (answered from the other modality) repaired and successes broken
    by an ablation, and the paired change of the MF ratio. ``base``/``ablated``: :func:`mfutils.findings.evaluation.run_readouts` rows
    of the same items."""
    b = base.set_index("uid")["decision"]
    a = ablated.set_index("uid")["decision"].reindex(b.index)
    rows = []
    for target, idx in base.groupby("target")["uid"]:
        bb, aa = b[idx.to_numpy()], a[idx.to_numpy()]
        # a failure answers from the other modality, as in the contributions' failed samples; a
        # sample answered from neither is neither a failure to repair nor a success to break
        failed, ok = bb == -1, bb == 1
        rows.append({"target": target, "n": len(bb), "MF clean": float(ok.mean()), "MF ablated": float((aa == 1).mean()),
                     "failures": int(failed.sum()), "answered neither": int((bb == 0).sum()),
                     "repaired": float((aa[failed] == 1).mean()) if failed.any() else float("nan"),
                     "broken": float((aa[ok] != 1).mean()) if ok.any() else float("nan")})
    return pd.DataFrame(rows)


def verdicts(meta: pd.DataFrame, tr, base: pd.DataFrame, ablated: pd.DataFrame, controls: pd.DataFrame,
             n_layers: int, n_boot: int = 500, seed: int = 0) -> pd.DataFrame:
    """Rules 03-alike, 03-fail-text, 03-fail-image and 03-ablate of :data:`mfutils.findings.rules.RULES`.

    ``meta``/``tr``: :func:`mfutils.findings.lens.trace` of the failure pool; ``base``/``ablated``: its
    readouts clean and with the rule band's MLPs mean-ablated; ``controls``: rows
    ``(measure, clean, ablated)`` for the single-modality controls."""
    L = n_layers
    parts = per_layer(tr)
    rows = []

    r = rules.rule("03-alike")
    layers = rules.band_layers(r.band, L)
    f, c = parts["follow_mlp"][:, layers].sum(1).mean(), parts["comp_mlp"][:, layers].sum(1).mean()
    alike = abs(f - c) <= r.threshold * max(abs(f), abs(c), 1e-9)
    rows.append(rules.verdict_row(r, f"following {f:+.2f} vs competitor {c:+.2f} (layers {layers[0]}–{layers[-1]}, summed)",
                                  "reproduced" if alike else "not reproduced"))

    effect = ablation_effect(base, ablated).set_index("target")
    for target in ("text", "image"):
        r = rules.rule(f"03-fail-{target}")
        layers = rules.band_layers(r.band, L)
        sel = ((meta["target"] == target) & (meta["decision"] == -1)).to_numpy()
        n = int(sel.sum())
        if n < rules.MIN_FAILURES:
            rows.append(rules.verdict_row(r, f"only {n} failures among {int((meta['target'] == target).sum())} conflicts "
                                             f"(the rule needs {rules.MIN_FAILURES})", "not measurable"))
            continue
        mlp = rules.band_statistic(parts["margin_mlp"][sel][:, layers].sum(1), n_boot, seed)
        attn = float(parts["margin_attn"][sel][:, layers].sum(1).mean())
        e = effect.loc[target]
        base_v = rules.effect_verdict(r, *mlp)
        causal_ok = e["repaired"] > e["broken"]
        verdict = ("reproduced" if base_v == "reproduced" and abs(attn) < abs(mlp[0]) and causal_ok
                   else ("partly" if base_v != "not reproduced" else "not reproduced"))
        rows.append(rules.verdict_row(
            r, f"MLP {rules.effect_text(mlp, r.threshold, n)}, attention {attn:+.2f} (layers {layers[0]}–{layers[-1]}, summed); "
               f"ablating those MLPs repairs {e['repaired']:.0%} of failures, breaks {e['broken']:.0%} of successes", verdict))

    r = rules.rule("03-ablate")
    b = base.set_index("uid")["decision"]
    a = ablated.set_index("uid")["decision"].reindex(b.index)
    change = rules.band_statistic(((a == 1).astype(float) - (b == 1).astype(float)).to_numpy(), n_boot, seed)
    ctrl = ", ".join(f"{m.measure} {m.clean:.2f} → {m.ablated:.2f}" for m in controls.itertuples())
    rows.append(rules.verdict_row(r, f"MF change {rules.fmt_ci(*change, digits=3)} over {len(b)} conflicts; controls: {ctrl}",
                                  rules.effect_verdict(r, *change)))
    return pd.DataFrame(rows)


def stage1_logits(meta: pd.DataFrame, trace, n_layers: int, n_boot: int) -> pd.DataFrame:
    """On failed samples, per direction: the lens logit of the following and of the competing
    answer at each layer (the paper's stage 1; rebuttal figure, our label A13), with bootstrap CIs.

    Columns: those of :func:`mfutils.findings.lens.summarize_layers` (``logit`` the mean), ``target``,
    ``quantity`` (``follow`` / ``comp``)."""
    parts = per_layer(trace)
    rows = []
    for target in ("image", "text"):
        sel = ((meta["target"] == target) & (meta["decision"] == -1)).to_numpy()
        for q in ("follow", "comp"):
            rows.append(summarize_layers(parts[f"{q}_lens"][sel], n_layers, "logit", n_boot).assign(target=target, quantity=q))
    return pd.concat(rows, ignore_index=True)

"""Speed and memory of the book on the organism, measured (``make bench``).

    python scripts/benchmark.py [--chapters] [--samples N] [--out FILE]

1. Head scorers: the fast attribution scorer against exhaustive single-head ablation —
   forward/backward passes per sample, wall time, Spearman rank correlation and top-5% overlap.
2. Threads: one batched forward pass with 1 and with 2 threads (PyTorch's default on 2 cores
   can be much slower than one thread when the other core is busy).
3. Training: seconds per stage-2 training step of a fresh organism of the shipped architecture,
   with 1 and 2 threads, the batch in one forward pass or in length-sorted micro-batches.
4. Chapters (with ``--chapters``): each chapter executed through the runner into a temporary
   folder, with its wall time, kernel peak memory and forward passes per sample; without it, the
   timings the last ``make book`` recorded in ``book/_timings.json``.

Prints tables and writes everything as JSON (default ``book/_benchmark.json``, whose engine
table the book's environment page shows). No test asserts on these numbers: they describe
one machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from mfutils.book import estimates, session
from mfutils.findings import evaluation, head_scores
from mfutils.engine import memory
from mfutils.book.chapters import CHAPTERS, chapter_spec
from mfutils.engine.encoding import encode
from mfutils.findings.head_scores import HeadsSpec
from mfutils.runs.paths import project_root
from mfutils.book.runner import BENCHMARK, write_environment_page


def bench_scorers(bundle, n_samples: int) -> dict:
    spec = HeadsSpec(n_samples=n_samples)
    items, _ = evaluation.conflict_items(spec, bundle)
    ad = bundle.adapter
    out = {"samples": len(items)}
    out["heads"] = ad.n_layers * ad.n_heads
    for t in ("image", "text"):
        its = [it for it in items if it.target == t]
        t0 = time.perf_counter()
        exh = head_scores.score_all(bundle, its, 64, exhaustive=True)
        t_all = time.perf_counter() - t0  # exhaustive ablation, plus the fast, attribution and direct scores
        t0 = time.perf_counter()
        fast = head_scores.score_all(bundle, its, 64, exhaustive=False)
        t_fast = time.perf_counter() - t0  # fast (IG + shortlist ablation), attribution and direct
        agree = head_scores.agreement_above_noise(fast["fast"], exh["ablation"], exh["ablation_se"], 0.05)
        p = exh["passes_per_sample"]
        out[t] = {
            "exhaustive passes/sample": p["ablation"], "fast passes/sample": p["fast"],
            "pass ratio": round(p["ablation"] / p["fast"], 2),
            "exhaustive run seconds": round(t_all, 2), "fast run seconds": round(t_fast, 2),
            "heads above noise": agree["heads above noise"], "pearson": round(agree["pearson"], 3),
            "spearman": round(agree["spearman"], 3), "top-5% overlap": agree["top_overlap"],
        }
    return out


def bench_engine(bundle, n_samples: int, control_filter: bool = True) -> tuple[list[dict], list[dict]]:
    """Naive versus incremental recomputation, measured in this run: forward-equivalents per
    sample, wall time and the largest difference of the answers' logit difference; and the
    knockout sweep's work per edge (:func:`mfutils.findings.routing.knockout_sweep`'s ``by_edge``).
    ``control_filter``: off for an untrained stand-in, which answers no control right."""
    from mfutils.findings import routing
    from mfutils.engine.metrics import answer_tokens

    spec = routing.RoutingSpec(n_samples=n_samples, control_filter=control_filter)
    items, _ = evaluation.conflict_items(spec, bundle)
    edges = list(dict.fromkeys(routing.FIGURE2_EDGES + routing.FIGURE3_EDGES + routing.CONTROL_EDGES))
    out, sweeps = [], {}
    for engine in ("naive", "incremental"):
        work: dict = {}
        t0 = time.perf_counter()
        sweeps[engine] = routing.knockout_sweep(bundle, items, edges, spec.window, 64, engine=engine, work=work)
        out.append({"task": "knockout sweep (chapter 01, 9 edges)", "engine": engine,
                    "forward-equivalents / sample": round(work[engine] / len(items), 2),
                    "share of naive": round(work[engine] / work["naive"], 3), "seconds": round(time.perf_counter() - t0, 2)})
        if engine == "incremental":
            # where the sweep's work goes: per edge, as a share of its naive cost (one full pass
            # per layer), against the floor of an engine with each sample's own suffix
            naive_edge = len(items) * bundle.adapter.n_layers
            by_edge = [{"edge": e, "incremental": round(w["incremental"] / naive_edge, 3),
                        "per-sample floor": round(w["per-sample floor"] / naive_edge, 3)}
                       for e, w in work["by_edge"].items()]
            floor = (len(items) + sum(w["per-sample floor"] for w in work["by_edge"].values())) / work["naive"]
            out[-1]["per-sample floor (share)"] = round(floor, 3)
    diff = float((sweeps["naive"]["ld_ko"] - sweeps["incremental"]["ld_ko"]).abs().max())
    out[-1]["max |Δ logit diff| vs naive"] = diff
    ad = bundle.adapter
    conflicts = [it for it in items if it.target == "image"][:64]
    batch = encode(bundle, conflicts).to(bundle.device, bundle.dtype)
    answers = [answer_tokens(bundle.tokenizer, it) for it in conflicts]
    L, H = ad.n_layers, ad.n_heads
    from mfutils.engine import incremental

    results = {}
    for engine in ("naive", "incremental", "incremental, heads tiled"):
        t0 = time.perf_counter()
        if engine == "naive":
            results[engine] = head_scores.ablation_per_sample(ad, head_scores.model_metric(bundle, batch, answers))
            passes = 1 + L * H
        else:
            run = incremental.clean_run(bundle, batch)
            if engine == "incremental":  # one head per pass
                results[engine] = head_scores.ablation_per_sample(
                    ad, head_scores.model_metric(bundle, batch, answers),
                    metric_from=head_scores.incremental_metric(bundle, run, answers))
            else:  # several heads per pass over the tiled batch, as many as the chapters take (mfutils.engine.memory)
                k = memory.heads_per_pass(bundle, len(conflicts), batch.inputs["input_ids"].shape[1])
                results[engine] = head_scores.ablation_tiled(bundle, run, answers, k)
                engine = f"incremental, {k} head(s) per pass"
                results[engine] = results.pop("incremental, heads tiled")
            passes = 1 + L * H * incremental.mean_layer_share(L)
        out.append({"task": "exhaustive head ablation (chapter 04)", "engine": engine,
                    "forward-equivalents / sample": round(passes, 2), "share of naive": round(passes / (1 + L * H), 3),
                    "seconds": round(time.perf_counter() - t0, 2),
                    "max |Δ logit diff| vs naive": float((results["naive"] - results[engine]).abs().max())})
    return out, by_edge


def pretrained_bundle():
    """``(bundle, label)``: the pretrained organism as the book loads it; where its trained parts
    are not shipped yet, the same architecture (SmolLM2-135M-Instruct's real weights, a tower,
    a projector) after a two-step training into a temporary folder, labelled as untrained.
    Cost and engine equality do not depend on what the parts learnt."""
    from mfutils.models import pretrained_organism as po
    from mfutils.models.loading import load_model

    if (po.pretrained_dir() / po.PARTS_FILE).exists():
        return load_model("pretrained-organism"), "pretrained-organism"
    from mfutils.models.train_pretrained import PretrainedTrainConfig, train

    tmp = Path(tempfile.mkdtemp(prefix="bench-pretrained-"))
    po.pretrained_dir = lambda: tmp / "parts"
    po.cache_root = lambda: tmp / "cache"
    with torch.enable_grad():
        train(tmp / "parts", PretrainedTrainConfig(steps=2, eval_every=100, eval_size=4, final_eval_size=8,
                                                  vision_pretrain_steps=2, align_steps=2, micro_batches=1,
                                                  batch_size=4, threads=2), log=lambda *_: None)
    return load_model("pretrained-organism"), "pretrained architecture (untrained parts)"


def bench_threads(bundle, repeats: int = 5) -> list[dict]:
    spec = HeadsSpec(n_samples=32)
    items, _ = evaluation.conflict_items(spec, None)
    batch = encode(bundle, items[:64]).to(bundle.device, bundle.dtype)
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        bundle.model(**batch.inputs)  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            with torch.no_grad():
                bundle.model(**batch.inputs)
            times.append(time.perf_counter() - t0)
        rows.append({"threads": threads, "batch": len(items[:64]), "median ms / forward": round(1000 * sorted(times)[len(times) // 2], 1)})
    torch.set_num_threads(1)
    return rows


@torch.enable_grad()  # the chapters' session turns gradients off
def bench_training(steps: int = 12) -> list[dict]:
    from mfutils.data import synthetic
    from mfutils.models.loading import organism_card
    from mfutils.models.organism import OrganismConfig, build_model, build_processor
    from mfutils.models.training import TrainConfig, accumulate_gradients, parse_mix, seed_everything, stage_two_optimizer

    card = organism_card()
    arch, cfg = OrganismConfig(**card["architecture"]), TrainConfig(**card["train_config"])
    items = synthetic.make_split("train", (steps + 2) * cfg.batch_size, seed=0, kinds=parse_mix(cfg.mix))
    rows = []
    for threads in (1, 2):
        for parts in (1, cfg.micro_batches):
            seed_everything(0, threads)
            processor = build_processor(arch)
            model = build_model(processor, arch)
            opt = stage_two_optimizer(model, cfg)
            times = []
            for step in range(steps + 2):
                chunk = items[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                accumulate_gradients(model, processor, chunk, parts)
                opt.step()
                if step >= 2:  # the first steps warm allocators up
                    times.append(time.perf_counter() - t0)
            rows.append({"threads": threads, "forward passes / batch": parts, "batch": cfg.batch_size,
                         "median s / step": round(sorted(times)[len(times) // 2], 3),
                         f"x {card['steps_run']} steps (s)": round(card["steps_run"] * sorted(times)[len(times) // 2])})
    torch.set_num_threads(1)
    return rows


def bench_chapters(run: bool) -> list[dict]:
    root = project_root()
    if run:
        from mfutils.book.runner import execute

        with tempfile.TemporaryDirectory() as tmp:
            timings = execute(list(CHAPTERS), {}, 1800, Path(tmp))
    else:
        path = root / "book" / "_timings.json"
        timings = json.loads(path.read_text()) if path.exists() else []
    from mfutils.book.chapters import comparison_overrides

    from mfutils.models.loading import lm_shape

    rows, shapes = [], {}  # model -> (layers, heads), read from its files without loading it
    for t in timings:
        chapter, comparison, _ = t["chapter"].partition(" (comparison)")
        if chapter in CHAPTERS:
            spec = chapter_spec(chapter, **(comparison_overrides(chapter) if comparison else {}))
            if spec.model_id not in shapes:
                shapes[spec.model_id] = lm_shape(spec.model_id)
            layers, heads = shapes[spec.model_id]
            rows.append({"chapter": chapter, "model": spec.model_id, "seconds": t["seconds"], "peak MB": t["peak_rss_mb"],
                         # knockouts counted as full passes: the naive engine's count
                         "naive passes / sample": estimates.passes_per_sample(chapter, layers, layers * heads,
                                                                              spec.to_dict())})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chapters", action="store_true", help="execute every chapter now instead of reading book/_timings.json")
    ap.add_argument("--samples", type=int, default=48, help="conflicts per direction for the scorer comparison")
    ap.add_argument("--pretrained-samples", type=int, default=4,
                    help="conflicts per direction for the engine comparison on the pretrained organism as well "
                         "(0 skips it; without its shipped parts it runs on an untrained stand-in)")
    ap.add_argument("--out", default=str(project_root() / BENCHMARK),
                    help="the JSON report (default: book/_benchmark.json, which the environment page shows)")
    args = ap.parse_args(argv)
    spec = HeadsSpec(n_samples=args.samples)
    session.configure(spec)
    from mfutils.models.loading import load_model

    bundle = load_model("organism")
    report = {"machine": {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.machine()},
              "measured": time.strftime("%Y-%m-%d", time.gmtime()), "threads": torch.get_num_threads()}
    rows, by_edge = bench_engine(bundle, args.samples)
    report["engine"] = [{"model": "organism", **r} for r in rows]
    report["sweep_by_edge"] = [{"model": "organism", **r} for r in by_edge]
    if args.pretrained_samples:
        # 30 layers x 9 heads: the naive sweep alone is 271 passes per sample, so few samples
        torch.set_num_threads(2)
        pre, label = pretrained_bundle()
        rows, by_edge = bench_engine(pre, args.pretrained_samples, control_filter="untrained" not in label)
        report["engine"] += [{"model": label, **r} for r in rows]
        report["sweep_by_edge"] += [{"model": label, **r} for r in by_edge]
        del pre
        torch.set_num_threads(spec.num_threads)
    report["scorers"] = bench_scorers(bundle, args.samples)
    report["threads"] = bench_threads(bundle)
    report["training"] = bench_training()
    report["chapters"] = bench_chapters(args.chapters)
    print("\n## Naive versus incremental recomputation (both organisms, measured in this run)\n")
    print(pd.DataFrame(report["engine"]).to_string(index=False))
    print("\n## The knockout sweep's work per edge, as a share of its naive cost\n")
    print("incremental: what the engine spends (each sample from its own first target position, padded to the\n"
          "batch's longest suffix); per-sample floor: each sample's suffix alone, without the padding\n")
    print(pd.DataFrame(report["sweep_by_edge"]).to_string(index=False))
    print(f"\n## Head scorers per direction (organism, {report['scorers']['samples']} samples, {report['scorers']['heads']} heads)\n")
    print(pd.DataFrame({t: report["scorers"][t] for t in ("image", "text")}).to_string())
    print("\n## Threads (one batched forward pass)\n")
    print(pd.DataFrame(report["threads"]).to_string(index=False))
    print("\n## Training steps (stage 2, encoding included)\n")
    print(pd.DataFrame(report["training"]).to_string(index=False))
    print("\n## Chapters" + (" (executed now)" if args.chapters else " (from book/_timings.json)") + "\n")
    if report["chapters"]:
        df = pd.DataFrame(report["chapters"])
        print(df.to_string(index=False))
        for model, g in df.groupby("model", sort=False):
            print(f"total, {model}: {g['seconds'].sum():.0f} s")
    else:
        print("no timings: run `make book` or pass --chapters")
    print("\n## GPU plan (estimates from mfutils.book.estimates, each chapter at its defaults, exhaustive off)\n")
    from mfutils.book.chapters import notebook_defaults

    gpu = estimates.estimates_table({ch: {**notebook_defaults(ch), "exhaustive": False} for ch in CHAPTERS})
    report["gpu_estimates"] = gpu.to_dict(orient="records")
    print(gpu.to_string(index=False))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwritten: {args.out}")
    if Path(args.out).resolve() == (project_root() / BENCHMARK).resolve():
        write_environment_page(project_root())
        print("environment page rewritten with this run's engine table (rebuild the HTML: make html)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

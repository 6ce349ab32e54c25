"""Does the base language model itself know which way a verb of the instruction banks points?

A diagnostic for choosing recipes, not a chapter: every recipe trial so far has learnt the
training verbs, and its seeds then read unseen verbs in opposite directions. If the base model,
asked in plain English, already tells the bank's verbs of following from its verbs of avoiding,
the knowledge is there and training fails to use it; if it cannot, no recipe over the same base
can count on it for a verb it never trained on.

Only the banks' own verbs are asked (``instruction_banks._FOLLOW_VERBS`` + ``_FOLLOW_VERBS_MORE`` and the
avoid lists), never a validation or test sentence, so the held-out sets stay unread.

    python scripts/verb_polarity.py [--threads 2] [--json out.json]

Prints two readings. Asked: per question wording, the share of verbs on the right side of "yes"
against "no" at a zero threshold, and the threshold-free AUC (the chance that a verb of following
scores above a verb of avoiding). Probed: per layer, the leave-one-verb-out accuracy of a ridge
classifier on the base model's hidden state at the end of the bare imperative ("Go by the text."),
every verb predicted by a classifier that never saw it, beside the same with shuffled labels.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mfutils.models import pretrained_organism as po  # noqa: E402
from mfutils.data import instruction_banks  # noqa: E402

#: ``{verb}`` the imperative as the banks write it ("Go by"), ``{m}`` the modality word
QUESTIONS = (
    'Someone tells you: "{verb} the {m}." Should you use the {m} to answer? Answer yes or no.',
    'Instruction: "{verb} the {m}." Does this instruction ask you to rely on the {m}? Answer yes or no.',
)


def auc(pos: list[float], neg: list[float]) -> float:
    """Share of (follow, avoid) pairs the score orders correctly, ties counting half."""
    pairs = [(p > n) + 0.5 * (p == n) for p in pos for n in neg]
    return sum(pairs) / len(pairs)


def _left_padded(tok):
    """``tok`` set to pad on the left, so that position -1 is every row's last token."""
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def scores(model, tok, prompts: list[str]) -> list[float]:
    """``logit("yes") - logit("no")`` at the first answer position of each chat prompt."""
    yes = tok("yes", add_special_tokens=False)["input_ids"][0]
    no = tok("no", add_special_tokens=False)["input_ids"][0]
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in prompts]
    tok = _left_padded(tok)
    out: list[float] = []
    with torch.no_grad():
        for i in range(0, len(texts), 32):
            batch = tok(texts[i:i + 32], return_tensors="pt", padding=True, add_special_tokens=False)
            logits = model(**batch, logits_to_keep=1).logits[:, -1]
            out += (logits[:, yes] - logits[:, no]).tolist()
    return out


def sentence_states(model, tok, sentences: list[str]) -> torch.Tensor:
    """``(L + 1, n, D)`` hidden states at each sentence's last token (embeddings first)."""
    tok = _left_padded(tok)
    with torch.no_grad():
        batch = tok(sentences, return_tensors="pt", padding=True, add_special_tokens=False)
        hs = model(**batch, output_hidden_states=True).hidden_states
    return torch.stack([h[:, -1] for h in hs])


def loo_ridge_accuracy(x: torch.Tensor, y: torch.Tensor, lam: float = 10.0) -> float:
    """Leave-one-out accuracy of ridge regression onto ``y`` (+1 / -1) from ``x`` ``(n, D)``,
    standardised on the training fold; the ridge is solved in its dual (``n`` is small)."""
    n, right = len(y), 0
    for i in range(n):
        keep = torch.arange(n) != i
        xt, yt = x[keep].double(), y[keep].double()
        mu, sd = xt.mean(0), xt.std(0) + 1e-6
        xt, xi = (xt - mu) / sd, (x[i].double() - mu) / sd
        alpha = torch.linalg.solve(xt @ xt.T + lam * torch.eye(n - 1, dtype=xt.dtype), yt - yt.mean())
        right += int(((xi @ xt.T @ alpha + yt.mean()) > 0).item() == (y[i] > 0).item())
    return right / n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="write every verb's scores here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    model, tok = po.load_base()
    model.eval()
    follow = instruction_banks._FOLLOW_VERBS + instruction_banks._FOLLOW_VERBS_MORE
    avoid = instruction_banks._AVOID_VERBS + instruction_banks._AVOID_VERBS_MORE
    verbs, record = follow + avoid, []
    for q in QUESTIONS:
        for m in ("image", "text"):
            s = scores(model, tok, [q.format(verb=instruction_banks._cap(v), m=m) for v in verbs])
            pos, neg = s[:len(follow)], s[len(follow):]
            yes, no = sum(x > 0 for x in pos), sum(x <= 0 for x in neg)
            right = (yes + no) / len(verbs)
            print(f"{m:5s} | {q[:48]}... | right side of 0: {right:.0%} "
                  f"(follow said yes {yes}/{len(pos)}, avoid said no {no}/{len(neg)}) | AUC {auc(pos, neg):.2f}")
            record.append({"question": q, "modality": m, "auc": auc(pos, neg), "right_at_zero": right,
                           "scores": dict(zip(verbs, s))})
    y = torch.tensor([1.0] * len(follow) + [-1.0] * len(avoid))
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    for m in ("image", "text"):
        states = sentence_states(model, tok, [f"{instruction_banks._cap(v)} the {m}." for v in verbs])
        layers = list(range(0, states.shape[0], 3))
        acc = [loo_ridge_accuracy(states[k], y) for k in layers]
        ctl = [loo_ridge_accuracy(states[k], shuffled) for k in layers]
        print(f"{m:5s} | probe, leave one verb out, layers {layers[0]}..{layers[-1]} by 3: "
              + " ".join(f"{a:.0%}" for a in acc) + " | shuffled labels: " + " ".join(f"{a:.0%}" for a in ctl))
        record.append({"probe": m, "layers": layers, "loo_accuracy": acc, "shuffled_accuracy": ctl})
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The chapters' "Result in brief" (issue 42): every claim with its verdict and what it means,
the departures with what the model does instead, all from the numbers passed in."""

import pandas as pd

from mfutils.book import brief
from mfutils.findings import rules


def _verdict(rows):
    return pd.DataFrame(rows, columns=["rule", "claim", "verdict", "ours"])


def test_every_rule_says_what_it_means_for_the_paper():
    assert {r.id for r in rules.RULES} == set(brief.STORY)


def test_each_verdict_reads_as_agreement_part_departure_or_none():
    assert brief.meaning("01-vl", "reproduced", "x").startswith("As in the paper: the last position never reads")
    dep = brief.meaning("01-vl", "not reproduced", "image: largest |Δ| 8.54 at layer 23")
    assert dep.startswith("Departs from the paper: the last position reads the image directly") and "8.54" in dep
    assert brief.meaning("05-block", "partly", "drop 20%").startswith("Only in part (blocking a few heads") and "drop 20%" in brief.meaning("05-block", "partly", "drop 20%")
    assert brief.meaning("03-fail-text", "not measurable", "only 5 failures") == "No verdict either way: only 5 failures."
    # chapter 0's checks have no rule id; they and the book's own claims never read "as in the paper"
    assert brief.meaning("", "met", "98%").startswith("Met (the book's own check, not the paper's): the model is a fair")
    assert brief.meaning("01-qf", "met", "x").startswith("Met (the book's own claim, not the paper's): the last position reads")
    assert brief.meaning("04-fast", "not met", "0.53").startswith("Not met (the book's own claim): the cheap scorer")


def test_the_brief_counts_the_claims_shows_badges_and_no_raw_names():
    v = _verdict([("03-alike", "On average MLPs lift both candidates alike", "reproduced", "+34 vs +33.9"),
                  ("03-ablate", "Mean-ablating the late MLPs raises following", "not reproduced",
                   "controls: image_only 1.00 → 0.75")])
    b = brief.Brief("SmolLM2 organism", v, ["**What the late MLPs do instead.** they write the answer"])
    assert b.lead == "On the SmolLM2 organism, this chapter's 2 claims: 1 reproduced, 1 not reproduced."
    html = b._repr_html_()
    assert html.count('class="mf-badge"') == 2 and "<strong>What the late MLPs do instead.</strong>" in html
    assert "image_only" not in html and "image-only 1.00 → 0.75" in html
    assert "not reproduced" in repr(b) and "they write the answer" in repr(b)


def test_instead_routing_names_the_strongest_cut_and_whether_it_is_in_the_band():
    route = pd.DataFrame([
        {"target": "image", "edge": "Vision -/-> Last", "layer": 23, "depth": 23 / 30, "log_odds": -8.5},
        {"target": "image", "edge": "Vision -/-> Text", "layer": 14, "depth": 14 / 30, "log_odds": -0.1},
        {"target": "text", "edge": "TextCtx -/-> Instruction", "layer": 15, "depth": 0.5, "log_odds": -0.1},
    ])
    (s,) = brief.instead_routing(route, 30)
    assert "image following depends most on Vision→Last at depth 0.77" in s and "outside the paper's routing band" in s
    assert "text following" not in s  # −0.1 is below the effect threshold: nothing to say
    assert brief.instead_routing(route.assign(log_odds=0.0), 30) == []

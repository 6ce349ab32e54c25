"""The science, one module per chapter: baseline behaviour (:mod:`.behaviour`, chapter 0),
shallow routing (:mod:`.routing`, 1), deep arbitration (:mod:`.arbitration` with
:mod:`.lens`, 2), MLP inertia (:mod:`.inertia`, 3), sparse heads (:mod:`.head_scores`, 4) and
causal interventions (:mod:`.causal`, 5); the items each reads (:mod:`.evaluation`), the
verdict rules written before the runs they judge (:mod:`.rules`) and the paper's curves
(:mod:`.reference`)."""

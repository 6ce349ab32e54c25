"""The measuring engine every chapter shares: interventions as context managers
(:mod:`.interventions`), exact incremental recomputation (:mod:`.incremental`), prompt
encoding with token spans (:mod:`.encoding`), readouts and statistics (:mod:`.metrics`) and
memory estimates for a GPU's batch size (:mod:`.memory`)."""

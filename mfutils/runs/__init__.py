"""What a run is and where it goes: typed parameters that hash to a results folder
(:mod:`.params`), folders that cannot be mistaken for finished (:mod:`.results`), the
project's paths (:mod:`.paths`) and the machine a run was timed on (:mod:`.machine`)."""

"""The book's machinery: the chapter registry (:mod:`.chapters`), the runner that executes
the notebooks and builds the HTML (:mod:`.runner`, also ``python -m mfutils``), its dry run
(:mod:`.dryrun`), a chapter's session (:mod:`.session`), tables, figures and generated prose
(:mod:`.tables`, :mod:`.plotting`, :mod:`.discussion`), the front page's comparison
(:mod:`.comparison`), the GPU page's estimates (:mod:`.estimates`) and nbval's budget and
tolerance (:mod:`.nbval_budget`, :mod:`.nbval_tolerance`)."""

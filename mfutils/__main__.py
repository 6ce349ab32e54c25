"""``python -m mfutils all|execute|compare|html|check``: the book's runner (:mod:`mfutils.book.runner`)."""

from mfutils.book.runner import main

raise SystemExit(main())

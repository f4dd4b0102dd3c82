"""``python -m fr_utils.cast check [DIR]``: is DIR usable as the course's cast?

This folder is the sample cast, package data rather than a package (pyproject's
``namespaces = false``); this one file, shipped as package data, makes
``python -m fr_utils.cast`` run the command, which lives in :mod:`fr_utils.castcheck`.
"""

import sys

from fr_utils.castcheck import main

sys.exit(main())

"""``python -m phonetune.cli ...``: the ``phonetune`` command (worker subprocesses are started this way)."""

import sys

from phonetune.cli.main import main

sys.exit(main())

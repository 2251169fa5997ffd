"""``python -m memscope``: the command line."""

import sys

from memscope.cli import main

sys.exit(main())

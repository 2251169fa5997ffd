"""``python -m memscope``: the command line."""

import sys

from memscope.commands.main import main

sys.exit(main())

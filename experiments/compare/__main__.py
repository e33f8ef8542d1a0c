"""``python -m experiments.compare``: see the package's docstring."""

import sys

from experiments.compare.command import main

sys.exit(main())

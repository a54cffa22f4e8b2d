"""``python -m smisk`` runs smisk-serve."""

import sys

from smisk.cli import main

sys.exit(main())

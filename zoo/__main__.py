"""``python -m zoo ...`` runs the ``zoo`` command line (same as the installed ``zoo`` script)."""

import sys

from zoo.cli import main

sys.exit(main())

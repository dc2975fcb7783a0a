"""``python -m ppgen`` runs the ``ppgen`` command."""

import sys

from ppgen.cli import main

sys.exit(main())

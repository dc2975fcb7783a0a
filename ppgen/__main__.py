"""``python -m ppgen`` runs the ``ppgen`` command."""

import sys

from ppgen.app.cli import main

sys.exit(main())

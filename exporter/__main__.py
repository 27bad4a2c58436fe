"""`python -m exporter`: the `aura` command line (exporter.cli.main)."""

import sys

from exporter.cli import main

sys.exit(main())

"""`python -m theory bounds ...` (SPEC §4): see `theory.cli`."""

import sys

from theory.cli import main

sys.exit(main())

"""`python -m theory bounds|minimum|recheck ...`: see `theory.cli`."""

import sys

from theory.cli import main

sys.exit(main())

"""`python -m constructions convert ...`: see `constructions.convert_cli`."""

import sys

from constructions.convert_cli import main

sys.exit(main())

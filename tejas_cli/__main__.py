"""`python -m tejas_cli …`, the same as the `tejas` command."""

import sys

from . import main

sys.exit(main())

"""`python -m maskcls` (and `torchrun -m maskcls`): the same exit codes as the console script."""

import sys

from maskcls.cli import main

sys.exit(main())

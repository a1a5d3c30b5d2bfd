"""`python -m aekit ...` (also what torchrun launches): the aekit command."""

import sys

from .cli import main

sys.exit(main())

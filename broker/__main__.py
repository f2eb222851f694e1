"""`python -m broker` is the `warren` command."""

import sys

from broker.cli import main

sys.exit(main())

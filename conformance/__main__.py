"""`python -m conformance`: see conformance.runner."""

import sys

from conformance.runner import main

sys.exit(main())

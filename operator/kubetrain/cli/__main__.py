"""`python -m kubetrain.cli`, as the tests start the operator."""

import sys

from kubetrain.cli import main

sys.exit(main())

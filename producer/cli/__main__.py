"""`python -m btq.producer.cli` is the `btq` command."""

import sys

from btq.producer.cli.main import main

sys.exit(main())

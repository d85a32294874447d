"""`python -m btq.producer.cli` is the `btq` command."""

import sys

from btq.producer.cli.commands import main

sys.exit(main())

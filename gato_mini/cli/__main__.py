"""``python -m gato_mini.cli``: the ``gato-mini`` command."""

import sys

from gato_mini.cli import main

sys.exit(main())

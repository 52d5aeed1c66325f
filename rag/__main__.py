"""``python -m rag``: the ``rag`` command."""

import sys

from ui.cli import main

sys.exit(main())

"""``python -m jupyter_yolosnap``: the CLI."""
import sys

from .cli import main

sys.exit(main())

"""``python -m jupyter_yolosnap``: the CLI."""
import sys

from .frontends.cli import main

sys.exit(main())

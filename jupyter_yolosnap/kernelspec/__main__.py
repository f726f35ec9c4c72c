"""``python -m jupyter_yolosnap.kernelspec NAME --project DIR -f CONNECTION_FILE``: what a snapshot kernelspec runs."""
from .launcher import main

raise SystemExit(main())

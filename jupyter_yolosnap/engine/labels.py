"""Every label key this tool puts on images and containers, in one place (``org.jupyter-yolosnap.*``).

Labels on an image are read back from images other people built (pulled, imported), so every reader treats
their values as untrusted text.
"""
from __future__ import annotations

PREFIX = "org.jupyter-yolosnap"

# images
SNAPSHOT = f"{PREFIX}.snapshot"        # the snapshot name the image was built from
DIGEST = f"{PREFIX}.digest"            # the manifest digest it was verified against
BASE = f"{PREFIX}.base"                # the base image reference
STRATEGY = f"{PREFIX}.strategy"        # wheelhouse | pinned
ACCEPTED = f"{PREFIX}.accepted"        # what the build accepted (``pypi``: PyPI wheels for conda's)
KERNEL_PATH = f"{PREFIX}.kernel-path"  # kernel layer: where its ipykernel lives
VERSION = f"{PREFIX}.version"          # the jupyter_yolosnap version that made the layer
MANIFEST = f"{PREFIX}.manifest"        # pushed images: where the manifest file is inside (share/registry.py)

# containers
ROLE = f"{PREFIX}.role"                # kernel | run | tensorboard | probe
OWNER_PID = f"{PREFIX}.owner-pid"
OWNER_HOST = f"{PREFIX}.owner-host"
OWNER_START = f"{PREFIX}.owner-start"
KERNEL_ID = f"{PREFIX}.kernel-id"      # a Jupyter server's restored kernel: its record outlives the server
SCRATCH = f"{PREFIX}.scratch"          # a host folder of the container's own (kernel sockets), removed with it

# set outside the package, named here so that no file spells the prefix again
STANDIN = f"{PREFIX}.standin"          # the offline stand-in base image (scripts/standin-base.sh, which is shell)
TEST = f"{PREFIX}.test"                # what the test suite creates, to clean up only its own

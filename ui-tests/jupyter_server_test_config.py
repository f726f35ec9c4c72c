"""Server configuration for the UI tests (started by scripts/ui-test.sh, with --config=<this file>).

Galata's settings first, then ours: Galata forces port 8888 and a temporary root, which we override.
"""
import os

os.environ.setdefault("JUPYTERLAB_GALATA_ROOT_DIR", os.environ["YOLOSNAP_UI_ROOT"])  # no stray galata-test-* folder

from jupyterlab.galata import configure_jupyter_server

configure_jupyter_server(c)  # noqa: F821 - `c` is the config object jupyter passes in

c.ServerApp.ip = "127.0.0.1"
c.ServerApp.port = int(os.environ.get("YOLOSNAP_UI_PORT", "8899"))
c.ServerApp.port_retries = 0
c.ServerApp.root_dir = os.environ["YOLOSNAP_UI_ROOT"]
c.ServerApp.allow_root = True
c.ServerApp.open_browser = False
# The extension as just built from labextension/ wins over any installed copy of the same name.
# (Galata's own helper extension is found through the same setting: keep it.)
if os.environ.get("YOLOSNAP_UI_LABEXTENSIONS"):
    c.LabServerApp.extra_labextensions_path = [os.environ["YOLOSNAP_UI_LABEXTENSIONS"],
                                               str(c.LabServerApp.extra_labextensions_path)]

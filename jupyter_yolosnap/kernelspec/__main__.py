"""``python -m jupyter_yolosnap.kernelspec NAME ...``: a restored kernelspec's ``argv``, run only by a client that
ignores ``metadata.kernel_provisioner``. It starts nothing (a kernel on the host would pass for the snapshot's):
it says which provisioner the kernel needs and exits 2."""
import sys

from .install import PROVISIONER

name = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "?"
print(f"yolosnap: the kernel of snapshot {name!r} runs in its container through the Jupyter kernel provisioner "
      f"{PROVISIONER!r}, which this client does not use; open the notebook in JupyterLab or Jupyter Server "
      f"(jupyter_client >= 7), or run cells with %%in_env {name}", file=sys.stderr)
raise SystemExit(2)

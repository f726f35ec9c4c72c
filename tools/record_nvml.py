#!/usr/bin/env python3
"""Record this machine's NVML answers as a test fixture for jupyter_yolosnap.gpu.

Run it ON a GPU machine, from a checkout (jupyter_yolosnap need not be installed, only nvidia-ml-py):

    python tools/record_nvml.py > tests/fixtures/nvml/<name>.json
    python tools/record_nvml.py -o tests/fixtures/nvml/<name>.json

The JSON is what ``jupyter_yolosnap.gpu.RecordedNvml`` replays, plus a ``torch`` key (torch's version and
the CUDA/cuDNN it was built with, when torch is importable) so a fixture can be cross-checked against the
framework's view of the same machine. ``jupyter_yolosnap/gpu.py`` is loaded by file path, not imported as
part of the package, so the package's other dependencies need not be installed here.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import platform
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Optional

GPU_MODULE = Path(__file__).resolve().parent.parent / "jupyter_yolosnap" / "gpu.py"


def load_gpu_module() -> ModuleType:
    """Load gpu.py alone: importing the package would pull in its __init__ and every dependency."""
    spec = importlib.util.spec_from_file_location("_yolosnap_gpu", GPU_MODULE)
    if spec is None or spec.loader is None:
        raise SystemExit(f"record_nvml: cannot load {GPU_MODULE}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def torch_facts() -> Optional[Dict[str, Any]]:
    """torch's own view (None when torch is not installed): what later fixtures are cross-checked against."""
    try:
        import torch
    except ImportError:
        return None
    except Exception as err:  # noqa: BLE001 - a broken torch is worth recording, not crashing on
        return {"import_error": f"{type(err).__name__}: {err}"}
    facts: Dict[str, Any] = {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": None,
        "cuda_available": None,
    }
    try:
        facts["cudnn"] = torch.backends.cudnn.version()
        facts["cuda_available"] = torch.cuda.is_available()
    except Exception as err:  # noqa: BLE001
        facts["error"] = f"{type(err).__name__}: {err}"
    return facts


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", help="write the JSON here instead of stdout")
    parser.add_argument("--no-torch", action="store_true", help="do not import torch")
    args = parser.parse_args(argv)

    try:
        import pynvml  # noqa: F401
    except ImportError:
        print("record_nvml: pynvml is missing; pip install nvidia-ml-py", file=sys.stderr)
        return 2

    gpu = load_gpu_module()
    recording = gpu.record_nvml()
    today = datetime.date.today().isoformat()
    recording = {
        "provenance": f"recorded by tools/record_nvml.py on {today} ({platform.system()} {platform.machine()})",
        **recording,
        "torch": None if args.no_torch else torch_facts(),
    }
    # Self-check: replaying the recording must give what the probe gives live, or the fixture lies.
    live = gpu.probe_gpus()
    replayed = gpu.probe_gpus(gpu.RecordedNvml(recording))
    recording["probe"] = live
    if replayed != live:
        print(
            "record_nvml: WARNING: the replay differs from the live probe:\n"
            f"  live:     {json.dumps(live)}\n  replayed: {json.dumps(replayed)}",
            file=sys.stderr,
        )
    text = json.dumps(recording, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"record_nvml: wrote {args.output} (status {recording['probe']['status']})", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

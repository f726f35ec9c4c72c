#!/usr/bin/env python3
"""Record this machine's NVML answers as a test fixture for jupyter_yolosnap.gpu.

Run it ON a GPU machine, from a checkout (jupyter_yolosnap need not be installed, only nvidia-ml-py):

    python tools/record_nvml.py > tests/fixtures/nvml/<name>.json
    python tools/record_nvml.py -o tests/fixtures/nvml/<name>.json

The JSON is what ``tests/nvml_replay.py's RecordedNvml`` replays, plus a ``torch`` key (torch's version and
the CUDA/cuDNN it was built with, when torch is importable) so a fixture can be cross-checked against the
framework's view of the same machine. The probe and the recorder import only the
standard library, so the package's other dependencies need not be installed here.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent


def load_modules() -> tuple[ModuleType, ModuleType]:
    """The probe (``jupyter_yolosnap.gpu.nvml``) and its recorder (``tests/nvml_replay.py``), from this checkout:
    both import only the standard library, so nothing but nvidia-ml-py need be installed here."""
    sys.path.insert(0, str(REPO))
    from jupyter_yolosnap.gpu import nvml  # noqa: PLC0415
    from tests import nvml_replay  # noqa: PLC0415

    return nvml, nvml_replay


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
    parser.add_argument("--samples", type=int, default=5, help="GPU telemetry samples to record, 1 s apart "
                        "(run a training job meanwhile for telling figures; 0: none)")
    args = parser.parse_args(argv)

    try:
        import pynvml  # noqa: F401
    except ImportError:
        print("record_nvml: pynvml is missing; pip install nvidia-ml-py", file=sys.stderr)
        return 2

    gpu, replay = load_modules()
    recording = replay.record_nvml(samples=args.samples)
    today = datetime.date.today().isoformat()
    recording = {
        "provenance": f"recorded by tools/record_nvml.py on {today} ({platform.system()} {platform.machine()})",
        **recording,
        "torch": None if args.no_torch else torch_facts(),
    }
    # Self-check: replaying the recording must give what the probe gives live, or the fixture lies.
    live = gpu.probe_gpus()
    replayed = gpu.probe_gpus(replay.RecordedNvml(recording))
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

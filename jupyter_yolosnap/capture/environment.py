"""Selected environment variables: the ones that change how CUDA, PyTorch and math libraries behave.

Only names on an allow-list of prefixes are read, and any of those that look like a secret (by name or
by value) are dropped, because manifests are committed.
"""
from __future__ import annotations

import os
import re

from .urls import strip_credentials

KEPT_PREFIXES = (
    "CUDA_", "CUDNN_", "NVIDIA_", "NCCL_", "TORCH_", "PYTORCH_", "TF_", "XLA_", "JAX_", "OMP_", "MKL_",
    "OPENBLAS_", "KMP_", "NUMEXPR_", "CUBLAS_", "TORCHINDUCTOR_", "TRITON_", "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE", "YOLO_", "ULTRALYTICS_",
)
KEPT_NAMES = frozenset({"LD_LIBRARY_PATH", "LD_PRELOAD", "PYTHONHASHSEED", "PYTHONPATH", "CUBLAS_WORKSPACE_CONFIG",
                        "LANG", "LC_ALL", "TZ"})
#: Allowed prefixes that other tools share (Terraform's TF_CLI_*), not ML settings.
DROPPED_PREFIXES = ("TF_CLI_", "TF_VAR_", "TF_LOG", "TF_WORKSPACE", "TF_DATA_DIR", "TF_PLUGIN")
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|PASSWD|PWD|KEY|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE|SIGNATURE",
                         re.IGNORECASE)
SECRET_VALUE = re.compile(
    r"(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_|hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}"
    r"|xox[abpr]-|eyJ[A-Za-z0-9_-]{10,}\.|-----BEGIN)"
)


def is_kept(name: str, value: str) -> bool:
    """True for a variable we record: allow-listed, and neither its name nor its value looks secret."""
    if name not in KEPT_NAMES and (not name.startswith(KEPT_PREFIXES) or name.startswith(DROPPED_PREFIXES)):
        return False
    return not SECRET_NAME.search(name) and not SECRET_VALUE.search(value)


def probe_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The kept variables, sorted, with credentials removed from any URL-shaped value."""
    environ = os.environ if environ is None else environ
    return {name: strip_credentials(value) if "://" in value else value
            for name, value in sorted(environ.items()) if is_kept(name, value)}

"""The CUDA stack a kernel uses, read from files so no heavy framework is imported.

torch writes its build into ``torch/version.py``; cuDNN comes as an ``nvidia-cudnn-*`` wheel (or a header, or
a versioned ``libcudnn.so.N`` bundled in ``torch/lib``); a system toolkit shows as ``nvcc``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from .fatbin import torch_arch_list

_CUDNN_DEFINE = re.compile(r"#define\s+CUDNN_(MAJOR|MINOR|PATCHLEVEL)\s+(\d+)")
#: ``nvidia-*`` distributions that are bindings or tools, not CUDA libraries a build must match.
NOT_CUDA_WHEELS = frozenset({"nvidia-ml-py", "nvidia-ml-py3", "nvidia-pyindex"})
_NVCC_RELEASE = re.compile(r"release (\d+\.\d+), V([\d.]+)")


def read_version_module(path: str) -> dict:
    """Read top-level literal assignments (``cuda = '12.1'``) without executing the file."""
    import ast  # only environments with torch or TensorFlow pay for it

    try:
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
    except (OSError, SyntaxError, ValueError):
        return {}
    values: dict = {}
    for node in tree.body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if isinstance(target, ast.Name):
            try:
                values[target.id] = ast.literal_eval(value)
            except ValueError:
                pass
    return values


def find_on_path(relative: str) -> str | None:
    """The first ``sys.path`` entry holding ``relative``, as an import would find it."""
    for entry in sys.path:
        candidate = os.path.join(entry or os.getcwd(), relative)
        if os.path.exists(candidate):
            return candidate
    return None


def _version_of(packages: list[dict], *names: str) -> str | None:
    for pkg in packages:
        if pkg["name"] in names:
            return pkg["version"]
    return None


def cudnn_from_header(path: str) -> str | None:
    """``cudnn_version.h`` defines MAJOR, MINOR, PATCHLEVEL."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            parts = dict(_CUDNN_DEFINE.findall(handle.read()))
    except OSError:
        return None
    if "MAJOR" not in parts:
        return None
    return ".".join(parts.get(k, "0") for k in ("MAJOR", "MINOR", "PATCHLEVEL"))


def _cudnn_version(torch_dir: str | None, packages: list[dict]) -> str | None:
    for pkg in packages:
        if pkg["name"].startswith("nvidia-cudnn"):
            header = find_on_path("nvidia/cudnn/include/cudnn_version.h")
            return (cudnn_from_header(header) if header else None) or pkg["version"]
    if torch_dir:
        lib = os.path.join(torch_dir, "lib")
        for name in sorted(os.listdir(lib)) if os.path.isdir(lib) else []:
            match = re.match(r"libcudnn\.so\.(\d+(?:\.\d+)*)$", name)
            if match:
                return match.group(1)
    return None


def probe_torch(packages: list[dict]) -> dict | None:
    """torch's version and the CUDA/cuDNN it was built with, or None when torch is absent."""
    version = _version_of(packages, "torch")
    if version is None:
        return None
    version_file = find_on_path("torch/version.py")
    info = read_version_module(version_file) if version_file else {}
    torch_dir = os.path.dirname(version_file) if version_file else None
    cuda = info.get("cuda")
    return {
        "version": info.get("__version__") or version,
        "cuda": cuda,
        "cudnn": _cudnn_version(torch_dir, packages) if cuda else None,
        "arch_list": torch_arch_list(torch_dir) if cuda else None,  # the GPUs its kernels were built for
        "hip": info.get("hip"),
        "git_version": info.get("git_version"),
    }


def probe_tensorflow(packages: list[dict]) -> dict | None:
    """TensorFlow records its CUDA build in ``tensorflow/python/platform/build_info.py``."""
    version = _version_of(packages, "tensorflow", "tensorflow-gpu", "tensorflow-cpu")
    if version is None:
        return None
    build_file = find_on_path("tensorflow/python/platform/build_info.py")
    info = read_version_module(build_file) if build_file else {}
    build = info.get("build_info") if isinstance(info.get("build_info"), dict) else {}
    return {"version": version, "cuda": build.get("cuda_version"), "cudnn": build.get("cudnn_version")}


def probe_nvcc() -> dict | None:
    """A system CUDA toolkit, which a rebuild must supply from a CUDA base image."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        for root in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
            if root and os.access(os.path.join(root, "bin", "nvcc"), os.X_OK):
                nvcc = os.path.join(root, "bin", "nvcc")
                break
    if nvcc is None:
        return None
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return {"path": nvcc, "version": None}
    match = _NVCC_RELEASE.search(out)
    return {"path": nvcc, "version": match.group(1) if match else None, "build": match.group(2) if match else None}


def probe_cuda(packages: list[dict]) -> dict:
    """Everything CUDA-related a rebuild must reproduce, from the package list already captured."""
    return {
        "torch": probe_torch(packages),
        "tensorflow": probe_tensorflow(packages),
        "wheels": [{"name": p["name"], "version": p["version"]} for p in packages
                   if p["name"].startswith("nvidia-") and p["name"] not in NOT_CUDA_WHEELS],
        "nvcc": probe_nvcc(),
    }

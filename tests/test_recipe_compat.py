"""The recipe's compatibility knowledge: data tables and the small pure functions that read them."""
from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import pytest

from jupyter_yolosnap.exceptions import RecipeError, YolosnapError
from jupyter_yolosnap.recipe import compat
from jupyter_yolosnap.recipe.compat import (
    TORCH_FAMILY,
    check_requires_python,
    compat_table,
    cuda_base_image,
    debian_codename,
    is_heavy,
    needs_system_cuda,
    python_base_image,
    requires_python_failures,
    torch_family_indexes,
    torch_index_url,
)

DATA = Path(compat.__file__).with_name("data")
INDEX = "https://download.pytorch.org/whl/"


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message.strip() == message
    assert ": " in message  # what is wrong: what to do
    return message


# ------------------------------------------------------------------------------------------- data


@pytest.mark.parametrize("path", sorted(DATA.glob("*.json")), ids=lambda p: p.name)
def test_every_data_file_says_where_its_facts_come_from_and_when(path):
    table = json.loads(path.read_text(encoding="utf-8"))
    assert table["source"].strip() and table["note"].strip()
    assert datetime.date.fromisoformat(table["updated"]) == datetime.date(2026, 11, 26)


def test_the_four_tables_are_there_and_loaded_once():
    names = {p.stem for p in DATA.glob("*.json")}
    assert names == {"torch_indexes", "cuda_base_images", "python_base_images", "heavy_packages"}
    assert compat_table("torch_indexes") is compat_table("torch_indexes")
    with pytest.raises(ValueError):
        compat_table("../exceptions")


def test_data_names_no_host_but_the_pytorch_index():
    for path in DATA.glob("*.json"):
        for url in re.findall(r"[a-z]+://\S+", path.read_text(encoding="utf-8")):
            assert url.startswith("https://download.pytorch.org/whl/"), (path.name, url)


def test_heavy_names_are_already_normalised():
    table = compat_table("heavy_packages")
    for name in table["names"] + table["prefixes"]:
        assert name == name.lower() and "_" not in name and "." not in name


# ---------------------------------------------------------------------------------- torch indexes


@pytest.mark.parametrize("version, url", [
    ("2.1.2+cu121", INDEX + "cu121"),
    ("0.16.2+cu121", INDEX + "cu121"),
    ("2.5.1+cpu", INDEX + "cpu"),
    ("2.5.1+cpu.cxx11.abi", INDEX + "cpu-cxx11-abi"),
    ("2.6.0+rocm6.2.4", INDEX + "rocm6.2.4"),
    ("2.14.1+cu130", INDEX + "cu130"),
    ("2.7.1+cu118", INDEX + "cu118"),
    ("2.6.0+cu124", INDEX + "cu124"),
    ("2.9.1+cu126", INDEX + "cu126"),
    ("2.9.1+cu128", INDEX + "cu128"),
    ("2.8.0+cu129", INDEX + "cu129"),
    ("2.11.0+xpu", INDEX + "xpu"),
    ("2.1.2+CU121", INDEX + "cu121"),  # PEP 440 local labels are case-insensitive
    ("2.6.0.dev20241112+cu124", INDEX + "nightly/cu124"),
])
def test_local_builds_come_from_their_pytorch_index(version, url):
    assert torch_index_url(version) == url


@pytest.mark.parametrize("version", ["2.1.2", "0.16.2", "2.14.1", "1.26.4"])
def test_plain_versions_come_from_pypi(version):
    assert torch_index_url(version) is None


@pytest.mark.parametrize("version, label", [("2.1.2+cu999", "+cu999"), ("2.1.2+local.1", "+local.1"),
                                            ("2.4.1+cu131", "+cu131")])
def test_unknown_torch_build_is_refused_with_what_to_do(version, label):
    with pytest.raises(RecipeError) as err:
        torch_index_url(version)
    message = one_line(err)
    assert f"torch {version}: '{label}' is not a known PyTorch build" in message
    assert "--extra-index-url" in message and "recipe/data/torch_indexes.json" in message


def test_unknown_build_names_the_package_it_came_from():
    with pytest.raises(RecipeError, match=r"^torchvision 0\.16\.2\+cu999: "):
        torch_index_url("0.16.2+cu999", name="torchvision")


def test_an_invalid_version_is_a_recipe_error():
    with pytest.raises(RecipeError) as err:
        torch_index_url("not a version")
    one_line(err)


def test_known_suffixes_are_listed_not_guessed():
    labels = compat_table("torch_indexes")["local_versions"]
    for label in ("cpu", "cu118", "cu121", "cu124", "cu126", "cu128", "cu129", "cu130", "rocm6.2.4"):
        assert label in labels
    assert "cu127" not in labels and "cu999" not in labels


def test_torch_family():
    assert {"torch", "torchvision", "torchaudio"} <= TORCH_FAMILY
    assert "triton" not in TORCH_FAMILY  # same index, but no per-CUDA local builds
    assert "torch-scatter" not in TORCH_FAMILY  # '+pt21cu121' builds live on another index


def pkg(name, version, source="index", **extra):
    return {"name": name, "version": version, "source": source, **extra}


def test_family_indexes_are_distinct_and_sorted():
    packages = [
        pkg("torch", "2.1.2+cu121"), pkg("torchvision", "0.16.2+cu121"), pkg("torchaudio", "2.1.2+cpu"),
        pkg("numpy", "1.26.4"), pkg("Torch_Audio", "2.1.2"),
        pkg("scipy", "1.11.4+cu999"),  # not torch-family: none of our business
        pkg("torchtext", "0.16.2"),
    ]
    assert torch_family_indexes(packages) == [INDEX + "cpu", INDEX + "cu121"]


def test_family_indexes_skip_local_and_vcs_installs_and_empty_manifests():
    packages = [pkg("torch", "2.1.2+cu121", source="archive", url="file:///wheels/torch.whl"),
                pkg("torchvision", "0.16.2+cu999", source="vcs", url="https://example.invalid/v.git")]
    assert torch_family_indexes(packages) == []
    assert torch_family_indexes([]) == []


def test_family_indexes_refuse_an_unknown_build():
    with pytest.raises(RecipeError, match="torchvision 0.16.2\\+cu999"):
        torch_family_indexes([pkg("torch", "2.1.2+cu121"), pkg("torchvision", "0.16.2+cu999")])


# ---------------------------------------------------------------------------------- python image


def test_python_base_image():
    assert python_base_image("3.11.7") == "python:3.11.7-slim-bookworm"
    assert python_base_image("3.12.8", "trixie") == "python:3.12.8-slim-trixie"
    assert python_base_image("3.9.18", codename="bullseye") == "python:3.9.18-slim-bullseye"


@pytest.mark.parametrize("mirror, image", [
    ("mirror.example.invalid:5000", "mirror.example.invalid:5000/library/python:3.11.7-slim-bookworm"),
    ("mirror.example.invalid:5000/", "mirror.example.invalid:5000/library/python:3.11.7-slim-bookworm"),
    ("mirror.example.invalid", "mirror.example.invalid/library/python:3.11.7-slim-bookworm"),
    ("mirror.example.invalid/library/", "mirror.example.invalid/library/python:3.11.7-slim-bookworm"),
    ("mirror.example.invalid/library", "mirror.example.invalid/library/python:3.11.7-slim-bookworm"),
    ("mirror.example.invalid/library//", "mirror.example.invalid/library/python:3.11.7-slim-bookworm"),
    ("mirror.example.invalid:5000/hub/library", "mirror.example.invalid:5000/hub/library/python:3.11.7-slim-bookworm"),
    (None, "python:3.11.7-slim-bookworm"),
    ("", "python:3.11.7-slim-bookworm"),
])
def test_python_image_through_a_mirror(mirror, image):
    assert python_base_image("3.11.7", mirror=mirror) == image


@pytest.mark.parametrize("mirror", ["https://mirror.example.invalid", "/library", "mirror example", "//"])
def test_a_mirror_that_is_not_a_registry_prefix_is_refused(mirror):
    with pytest.raises(RecipeError) as err:
        python_base_image("3.11.7", mirror=mirror)
    one_line(err)


@pytest.mark.parametrize("version", ["3.11", "3", "3.11.7rc1", "python3.11.7", "", "3.11.7.1"])
def test_python_version_must_be_full(version):
    with pytest.raises(RecipeError) as err:
        python_base_image(version)
    assert "X.Y.Z" in one_line(err)


def test_unknown_codename_is_refused():
    with pytest.raises(RecipeError) as err:
        python_base_image("3.11.7", "jammy")
    message = one_line(err)
    assert "'jammy'" in message and "bookworm" in message and "python_base_images.json" in message


@pytest.mark.parametrize("system, codename", [
    ({"id": "debian", "version_id": "12", "codename": "bookworm"}, "bookworm"),
    ({"id": "debian", "version_id": "13", "codename": "trixie"}, "trixie"),
    ({"id": "debian", "version_id": "11", "codename": "bullseye"}, "bullseye"),
    ({"id": "debian", "version_id": None, "codename": "trixie"}, "trixie"),
    ({"id": "debian", "version_id": "10", "codename": "buster"}, "bookworm"),
    ({"id": "debian", "version_id": None, "codename": "forky"}, "bookworm"),  # testing: no image yet
    ({"id": "ubuntu", "version_id": "22.04", "codename": "jammy"}, "bookworm"),
    ({"id": "ubuntu", "version_id": "12", "codename": "bookworm"}, "bookworm"),
    ({"id": "fedora", "version_id": "40", "codename": ""}, "bookworm"),
    ({}, "bookworm"),
    (None, "bookworm"),
])
def test_debian_codename(system, codename):
    assert debian_codename(system) == codename


def test_ubuntu_does_not_pick_the_debian_release_with_its_number():
    assert debian_codename({"id": "ubuntu", "version_id": "11", "codename": "bullseye"}) == "bookworm"


# ------------------------------------------------------------------------------------ CUDA images


@pytest.mark.parametrize("args, kwargs, image", [
    (("12.1", 8), {}, "nvidia/cuda:12.1.1-cudnn8-runtime-ubuntu22.04"),
    (("12.2", 8), {}, "nvidia/cuda:12.2.2-cudnn8-runtime-ubuntu22.04"),
    (("12.3", 9), {}, "nvidia/cuda:12.3.2-cudnn9-runtime-ubuntu22.04"),
    (("12.4", 9), {}, "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"),
    (("12.8", 9), {"flavor": "devel", "os_tag": "ubuntu24.04"}, "nvidia/cuda:12.8.1-cudnn-devel-ubuntu24.04"),
    (("11.8", 8), {"os_tag": "ubuntu20.04"}, "nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu20.04"),
    (("12.1", None), {}, "nvidia/cuda:12.1.1-runtime-ubuntu22.04"),
    (("12.1",), {"flavor": "base"}, "nvidia/cuda:12.1.1-base-ubuntu22.04"),
    (("12.1.105",), {"flavor": "devel"}, "nvidia/cuda:12.1.1-devel-ubuntu22.04"),  # nvcc's version
    (("13.0", 9), {}, "nvidia/cuda:13.0.2-cudnn-runtime-ubuntu22.04"),
])
def test_cuda_base_image(args, kwargs, image):
    assert cuda_base_image(*args, **kwargs) == image


def test_cudnn_naming_changes_across_12_2_12_3_12_4():
    assert "-cudnn8-" in cuda_base_image("12.2", 8)
    assert "-cudnn9-" in cuda_base_image("12.3", 9)
    assert "-cudnn-" in cuda_base_image("12.4", 9)
    assert cuda_base_image("12.4", 9).startswith("nvidia/cuda:12.4.1-")


@pytest.mark.parametrize("cuda, cudnn", [("12.2", 9), ("12.3", 8), ("12.4", 8), ("11.8", 9)])
def test_cudnn_not_published_for_that_cuda_is_refused(cuda, cudnn):
    with pytest.raises(RecipeError) as err:
        cuda_base_image(cuda, cudnn)
    assert f"not cuDNN {cudnn}" in one_line(err)


def test_cudnn_has_no_base_flavor():
    with pytest.raises(RecipeError) as err:
        cuda_base_image("12.1", 8, flavor="base")
    assert "runtime or devel" in one_line(err)


@pytest.mark.parametrize("cuda", ["12.7", "10.2", "99.0"])
def test_unknown_cuda_is_refused(cuda):
    with pytest.raises(RecipeError) as err:
        cuda_base_image(cuda)
    message = one_line(err)
    assert f"CUDA {cuda}" in message and "--base" in message and "cuda_base_images.json" in message


@pytest.mark.parametrize("cuda", ["twelve", "", "12", "cu121"])
def test_malformed_cuda_is_refused(cuda):
    with pytest.raises(RecipeError) as err:
        cuda_base_image(cuda)
    one_line(err)


def test_unknown_flavor_and_os_are_refused():
    with pytest.raises(RecipeError) as err:
        cuda_base_image("12.1", flavor="slim")
    one_line(err)
    with pytest.raises(RecipeError) as err:
        cuda_base_image("12.1", os_tag="ubuntu24.04")
    assert "ubuntu22.04" in one_line(err)


def test_cuda_image_through_a_mirror():
    assert (cuda_base_image("12.1", 8, mirror="mirror.example.invalid:5000")
            == "mirror.example.invalid:5000/nvidia/cuda:12.1.1-cudnn8-runtime-ubuntu22.04")
    assert (cuda_base_image("12.1", 8, mirror="mirror.example.invalid/dockerhub/")
            == "mirror.example.invalid/dockerhub/nvidia/cuda:12.1.1-cudnn8-runtime-ubuntu22.04")


def test_every_cuda_entry_is_well_formed():
    table = compat_table("cuda_base_images")
    for minor, entry in table["versions"].items():
        assert entry["tag_version"].startswith(minor + ".")
        assert entry["os"] and entry["cudnn"]
        for os_tag in entry["os"]:
            assert cuda_base_image(minor, os_tag=os_tag)


def test_needs_system_cuda():
    assert needs_system_cuda({"cuda": {"torch": {"cuda": "12.1"}, "nvcc": {"version": "12.1.105"}}})
    assert not needs_system_cuda({"cuda": {"torch": {"cuda": "12.1", "cudnn": 8902}, "nvcc": None}})
    assert not needs_system_cuda({"cuda": None})
    assert not needs_system_cuda({})


# -------------------------------------------------------------------------------- Requires-Python

SOUPSIEVE = pkg("soupsieve", "4.1.3", requires_python=">=3.11.5")


def test_engine_case_soupsieve_on_debian_python_fails_and_on_the_kernels_passes():
    assert requires_python_failures([SOUPSIEVE], "3.11.2") == ["soupsieve 4.1.3 requires Python >=3.11.5"]
    assert requires_python_failures([SOUPSIEVE], "3.11.7") == []
    check_requires_python([SOUPSIEVE], "3.11.7")
    with pytest.raises(RecipeError) as err:
        check_requires_python([SOUPSIEVE], "3.11.2", snapshot_python="3.11.7")
    assert one_line(err) == ("1 pinned package cannot run on Python 3.11.2 (soupsieve 4.1.3 requires Python "
                             ">=3.11.5): use a base image with Python 3.11.7 (the snapshot's) or pass --base")


def test_pins_without_or_with_malformed_requires_python_are_ignored():
    packages = [pkg("six", "1.16.0"), pkg("old", "1.0", requires_python=">=3.6.*"),
                pkg("blank", "1.0", requires_python=""), pkg("legacy", "2.0", requires_python=">=2.7, !=3.0.*"),
                pkg("ok", "1.0", requires_python=">=3.8,<4")]
    assert requires_python_failures(packages, "3.11.2") == []


def test_pre_release_pythons_are_judged_like_pip():
    assert requires_python_failures([pkg("a", "1", requires_python=">=3.13")], "3.13.0rc1") == [
        "a 1 requires Python >=3.13"]
    assert requires_python_failures([pkg("a", "1", requires_python=">=3.12")], "3.13.0rc1") == []


def test_many_failures_are_listed_three_and_counted():
    packages = [pkg(f"p{i}", "1.0", requires_python=">=3.12") for i in range(5)] + [SOUPSIEVE, pkg("six", "1")]
    with pytest.raises(RecipeError) as err:
        check_requires_python(packages, "3.11.2")
    message = one_line(err)
    assert message.startswith("6 pinned packages cannot run on Python 3.11.2 (p0 1.0 requires Python >=3.12; "
                              "p1 1.0 requires Python >=3.12; p2 1.0 requires Python >=3.12; and 3 more): ")
    assert message.endswith("use a base image with the snapshot's Python or pass --base")


def test_whitespace_in_a_specifier_stays_on_one_line():
    packages = [pkg("odd", "1.0", requires_python=">=3.12,\n  <4")]
    assert requires_python_failures(packages, "3.11.2") == ["odd 1.0 requires Python >=3.12, <4"]


def test_an_unreadable_python_version_is_a_recipe_error():
    with pytest.raises(RecipeError) as err:
        requires_python_failures([SOUPSIEVE], "three eleven")
    one_line(err)
    assert isinstance(err.value, YolosnapError)


# -------------------------------------------------------------------------------- heavy packages


@pytest.mark.parametrize("name", [
    "torch", "torchvision", "torchaudio", "triton", "nvidia-cudnn-cu12", "nvidia_cublas_cu12", "nvidia-nccl-cu13",
    "tensorflow", "tensorflow-io-gcs-filesystem", "tf-keras", "jax", "jaxlib", "jax-cuda12-plugin", "xformers",
    "flash_attn", "bitsandbytes", "onnxruntime", "onnxruntime-gpu", "cupy-cuda12x", "opencv-python",
    "opencv-python-headless", "opencv-contrib-python", "NumPy", "scipy", "pandas", "pyarrow", "scikit-learn",
    "polars", "tensorrt-cu12-libs",
])
def test_heavy(name):
    assert is_heavy(name)


@pytest.mark.parametrize("name", ["six", "requests", "soupsieve", "torchmetrics", "numpy-stl",
                                  "nvidia", "jax2tf", "tensorboard", "ultralytics", "sklearn", "pandas-stubs",
                                  "nvidia-ml-py", "nvidia_ml_py3"])
def test_not_heavy(name):
    assert not is_heavy(name)

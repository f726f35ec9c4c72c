"""The GPU architectures of a CUDA library (``capture/fatbin.py``), read from a real library's fat-binary headers.

``tests/fixtures/fatbin/libcurand-10.3.10.19.json`` holds every container and entry header of the ``.nv_fatbin``
section of NVIDIA's libcurand (PyPI wheel nvidia-curand-cu12 10.3.10.19, recorded with tools/record_fatbin.py);
the tests rebuild a sparse ELF file from them, zeros where the compressed GPU code was.
"""
from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from jupyter_yolosnap.capture import fatbin

FIXTURES = Path(__file__).parent / "fixtures" / "fatbin"
CURAND = json.loads((FIXTURES / "libcurand-10.3.10.19.json").read_text())
#: torch 2.14.1+cu130's libtorch_cuda.so: 475 fat binaries; the first 32 bytes of each entry header kept.
TORCH = json.loads(gzip.decompress((FIXTURES / "libtorch_cuda-2.14.1+cu130.json.gz").read_bytes()))
#: what torch.cuda.get_arch_list() says in that wheel
TORCH_ARCH_LIST = ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"]
DATA_AT = 4096


def elf_with_section(path: Path, size: int, writes: list[tuple[int, bytes]], name: bytes = b".nv_fatbin") -> Path:
    """A minimal ELF64 little-endian file whose section ``name`` (``size`` bytes at 4096) holds ``writes``."""
    names = b"\0.shstrtab\0" + name + b"\0"
    names_at = DATA_AT + size
    table_at = names_at + len(names) + (-(names_at + len(names)) % 8)
    with open(path, "wb") as handle:
        header = b"\x7fELF\x02\x01\x01" + bytes(9)
        header += struct.pack("<HHIQQQIHHHHHH", 3, 62, 1, 0, 0, table_at, 0, 64, 0, 0, 64, 3, 1)
        handle.write(header)
        for offset, data in writes:
            handle.seek(DATA_AT + offset)
            handle.write(data)
        handle.seek(names_at)
        handle.write(names)
        handle.seek(table_at)
        handle.write(bytes(64))  # section 0
        handle.write(struct.pack("<IIQQQQIIQQ", 1, 3, 0, 0, names_at, len(names), 0, 0, 1, 0))
        handle.write(struct.pack("<IIQQQQIIQQ", 11, 1, 2, 0, DATA_AT, size, 0, 0, 8, 0))
    return path


def rebuilt(path: Path, recording: dict = CURAND) -> Path:
    """A sparse file with the recorded library's fat-binary headers where they were, zeros elsewhere."""
    return elf_with_section(path, recording["section_size"],
                            [(o, bytes.fromhex(h)) for o, h in recording["headers"]])


def curand_like(path: Path) -> Path:
    return rebuilt(path, CURAND)


def test_a_real_librarys_architectures_are_read_from_its_headers(tmp_path):
    found = fatbin.architectures(str(curand_like(tmp_path / "libcurand.so.10")))
    assert found == CURAND["architectures"]  # as read from the real file when it was recorded
    assert found["sm"] == ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_100",
                           "sm_101", "sm_103", "sm_120", "sm_121"] and found["ptx"] == ["compute_121"]


def test_torchs_own_library_gives_what_torch_cuda_get_arch_list_says(tmp_path):
    """torch's kernels carry SASS for its TORCH_CUDA_ARCH_LIST; a few bundled components add sm_89, sm_103 and
    sm_121 (in 1, 59 and 1 of 475 fat binaries): what most of the library carries is what torch says."""
    lib = tmp_path / "torch" / "lib"
    lib.mkdir(parents=True)
    rebuilt(lib / "libtorch_cuda.so", TORCH)
    assert fatbin.torch_arch_list(str(tmp_path / "torch")) == TORCH_ARCH_LIST
    assert TORCH["architectures"] == {"sm": TORCH_ARCH_LIST, "ptx": []}


def test_torch_arch_list_is_sass_then_ptx_as_torch_says_it(tmp_path):
    lib = tmp_path / "torch" / "lib"
    lib.mkdir(parents=True)
    curand_like(lib / "libtorch_cuda.so")
    (lib / "libtorch_cpu.so").write_bytes(b"\x7fELF not this one")
    assert fatbin.torch_arch_list(str(tmp_path / "torch")) == [
        "sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_89", "sm_90", "sm_100", "sm_101", "sm_103",
        "sm_120", "sm_121", "compute_121"]
    assert fatbin.torch_arch_list(None) is None and fatbin.torch_arch_list(str(tmp_path / "missing")) is None
    (lib / "libtorch_cuda.so").write_bytes(b"")
    assert fatbin.torch_arch_list(str(tmp_path / "torch")) is None  # a CPU wheel, or a file cut short


def entry(kind: int, arch: int, payload: int = 8, header: int = 64) -> bytes:
    return struct.pack("<HHIQ", kind, 0x0101, header, payload) + bytes(12) + struct.pack("<I", arch) + \
        bytes(max(header - 32, 0)) + bytes(payload)


def container(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return struct.pack("<IHHQ", fatbin.MAGIC, 1, 16, len(body)) + body


@pytest.mark.parametrize("section, expected", [
    (container(entry(2, 80), entry(1, 90)), {"sm": ["sm_80"], "ptx": ["compute_90"]}),
    (container(entry(2, 75)) + container(entry(2, 86), entry(2, 75)), {"sm": ["sm_75", "sm_86"], "ptx": []}),
    (container(entry(2, 80)) + bytes(24), {"sm": ["sm_80"], "ptx": []}),  # padding after the last one
    (container(entry(2, 80)) + container(entry(2, 80), entry(2, 89)) + container(entry(2, 80)),
     {"sm": ["sm_80"], "ptx": []}),                 # in one of three: a component's extra, not the library's
    (container(entry(7, 80), entry(2, 5000)), None),  # unknown kinds and absurd architectures are not counted
    (container(entry(2, 80, header=16)), None),       # an entry header shorter than its fields
    (bytes(64), None),                                # no container at all
    (container(entry(2, 80))[:40], None),             # cut inside the first entry
])
def test_odd_sections_are_read_or_refused_never_raised(tmp_path, section, expected):
    path = elf_with_section(tmp_path / "lib.so", len(section), [(0, section)])
    assert fatbin.architectures(str(path)) == expected


def test_files_that_are_not_what_they_say_give_none(tmp_path):
    good = container(entry(2, 80))
    cases = {
        "text": b"not an elf at all",
        "elf32": b"\x7fELF\x01\x01\x01" + bytes(100),
        "big-endian": b"\x7fELF\x02\x02\x01" + bytes(100),
        "short": b"\x7fELF\x02\x01",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert fatbin.architectures(str(tmp_path / name)) is None, name
    other = elf_with_section(tmp_path / "other.so", len(good), [(0, good)], name=b".nv_fatbinX")
    assert fatbin.architectures(str(other)) is None  # only the section of that exact name
    cut = elf_with_section(tmp_path / "cut.so", len(good), [(0, good)])
    cut.write_bytes(cut.read_bytes()[:DATA_AT + 20])  # the section table is gone with the tail
    assert fatbin.architectures(str(cut)) is None
    assert fatbin.architectures(str(tmp_path / "missing.so")) is None
    (tmp_path / "folder.so").mkdir()
    assert fatbin.architectures(str(tmp_path / "folder.so")) is None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_any_section_bytes_give_a_list_or_none(tmp_path, section):
    path = elf_with_section(tmp_path / "fuzz.so", len(section), [(0, section)])
    found = fatbin.architectures(str(path))
    assert found is None or (set(found) == {"sm", "ptx"} and all(a.startswith(("sm_", "compute_"))
                                                                   for a in found["sm"] + found["ptx"]))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from([1, 2]), st.integers(10, 1000), st.integers(0, 64)), min_size=1,
                max_size=8))
def test_generated_containers_report_exactly_their_architectures(tmp_path, entries):
    section = container(*(entry(kind, arch, payload) for kind, arch, payload in entries))
    path = elf_with_section(tmp_path / "gen.so", len(section), [(0, section)])
    found = fatbin.architectures(str(path))
    assert found == {"sm": [f"sm_{a}" for a in sorted({a for k, a, _ in entries if k == 2})],
                     "ptx": [f"compute_{a}" for a in sorted({a for k, a, _ in entries if k == 1})]}

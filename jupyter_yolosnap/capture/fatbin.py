"""The GPU architectures a CUDA library was built for, read from its ``.nv_fatbin`` section without loading it.

A wheel such as torch carries its GPU code as fat binaries: per kernel, machine code (SASS) for some compute
capabilities and PTX for others. A GPU whose capability has no SASS and no older PTX cannot run the wheel's
kernels, however new the driver ("no kernel image is available for execution on the device"); torch's cu128
wheels, for one, dropped Maxwell, Pascal and Volta. ``torch.cuda.get_arch_list()`` would say it, but importing
torch is seconds and runs the environment's code; the section says the same.

Layout (little-endian), as documented by reverse-engineering work on ``cuobjdump``: the section holds one or more
containers, each a 16-byte header (magic ``0xBA55ED50``, version ``u16``, header size ``u16``, payload size
``u64``) followed by entries: ``kind u16`` (1 PTX, 2 ELF/SASS), ``u16``, ``header_size u32``, ``size u64``, then
at offset 28 ``arch u32`` (75 for sm_75); the next entry starts ``header_size + size`` bytes later. Only entry
headers are read (seek, 32 bytes), so a gigabyte library costs milliseconds.

Standard library only: it runs inside the interpreter being captured.
"""
from __future__ import annotations

import os
import struct
from typing import BinaryIO, Dict, List, Optional, Tuple

MAGIC = 0xBA55ED50
KIND_PTX, KIND_ELF = 1, 2
SECTION = b".nv_fatbin"
_MAX_ENTRIES = 1_000_000  # libcublasLt holds a few thousand containers: a bound, not a limit anyone meets
_MAX_SECTIONS = 1 << 16


class _Bad(Exception):
    """The file is not what its headers say (truncated, a loop): its architectures are unknown."""


def _read(handle: BinaryIO, offset: int, size: int) -> bytes:
    handle.seek(offset)
    data = handle.read(size)
    if len(data) != size:
        raise _Bad(f"{size} bytes at {offset} are past the end")
    return data


def _fatbin_section(handle: BinaryIO) -> Optional[Tuple[int, int]]:
    """(offset, size) of the ELF file's ``.nv_fatbin`` section, or None (not ELF64 little-endian, no such section)."""
    ident = _read(handle, 0, 16)
    if ident[:4] != b"\x7fELF" or ident[4] != 2 or ident[5] != 1:
        return None
    shoff, = struct.unpack("<Q", _read(handle, 40, 8))
    shentsize, shnum, shstrndx = struct.unpack("<HHH", _read(handle, 58, 6))
    if not shoff or shentsize < 64 or not 0 < shnum <= _MAX_SECTIONS or shstrndx >= shnum:
        return None
    table = _read(handle, shoff, shnum * shentsize)

    def header(index: int) -> Tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from("<IIQQQQ", table, index * shentsize)
        return name, offset, size

    _, names_at, names_size = header(shstrndx)
    names = _read(handle, names_at, min(names_size, 1 << 20))
    for index in range(shnum):
        name, offset, size = header(index)
        if names[name:name + len(SECTION) + 1] == SECTION + b"\0":
            return offset, size
    return None


def architectures(path: str) -> Optional[Dict[str, List[str]]]:
    """``{"sm": ["sm_75", "sm_80", ...], "ptx": ["compute_90"]}`` for the library at ``path``: the architectures
    that at least half of its fat binaries carry (one per compiled file), so that a component built for extra
    GPUs does not make the whole library look as if it ran there. None when it has no fat binary or cannot be
    read (not ELF64, truncated, headers that do not add up)."""
    try:
        with open(path, "rb") as handle:
            section = _fatbin_section(handle)
            if section is None:
                return None
            containers, counts = _walk(handle, *section)
    except (OSError, struct.error, _Bad):
        return None
    common = {key for key, count in counts.items() if 2 * count >= containers}
    if not common:
        return None
    return {"sm": [f"sm_{a}" for k, a in sorted(common, key=lambda c: c[1]) if k == KIND_ELF],
            "ptx": [f"compute_{a}" for k, a in sorted(common, key=lambda c: c[1]) if k == KIND_PTX]}


def _walk(handle: BinaryIO, start: int, size: int) -> Tuple[int, Dict[Tuple[int, int], int]]:
    """How many containers the section holds, and in how many of them each (kind, architecture) appears."""
    counts: Dict[Tuple[int, int], int] = {}
    end, at, containers, entries = start + size, start, 0, 0
    while at + 16 <= end:
        magic, _version, header_size, payload = struct.unpack("<IHHQ", _read(handle, at, 16))
        if magic != MAGIC:
            break  # padding after the last container
        if header_size < 16:
            raise _Bad("container header smaller than itself")
        containers += 1
        seen = set()
        entry, stop = at + header_size, min(at + header_size + payload, end)
        while entry + 32 <= stop:
            kind, _, entry_header, entry_size = struct.unpack("<HHIQ", _read(handle, entry, 16))
            arch, = struct.unpack("<I", _read(handle, entry + 28, 4))
            if entry_header < 32:
                raise _Bad("entry header smaller than its fields")
            if kind in (KIND_ELF, KIND_PTX) and 10 <= arch <= 1000:
                seen.add((kind, arch))
            entries += 1
            if entries > _MAX_ENTRIES:
                raise _Bad("more entries than any library has")
            entry += entry_header + entry_size
        for key in seen:
            counts[key] = counts.get(key, 0) + 1
        at = max(stop, at + 16)
        at += (-at) % 8  # containers start 8-aligned
    return containers, counts


def torch_arch_list(torch_dir: Optional[str]) -> Optional[List[str]]:
    """What ``torch.cuda.get_arch_list()`` would say, from ``torch/lib/libtorch_cuda*.so``: the SASS
    architectures, then the PTX ones (``["sm_75", ..., "sm_120", "compute_120"]``); None when not found."""
    if not torch_dir:
        return None
    lib = os.path.join(torch_dir, "lib")
    try:
        candidates = sorted(n for n in os.listdir(lib) if n.startswith("libtorch_cuda") and ".so" in n)
    except OSError:
        return None
    sm: set = set()
    ptx: set = set()
    for name in candidates:
        found = architectures(os.path.join(lib, name))
        if found:
            sm.update(found["sm"])
            ptx.update(found["ptx"])
    if not sm and not ptx:
        return None
    number = lambda text: int(text.split("_")[1])  # noqa: E731
    return sorted(sm, key=number) + sorted(ptx, key=number)

"""Native libraries an environment's extension modules need but do not bundle.

A wheel that imports fine on the captured machine can fail in a slim image with ``ImportError: libGL.so.1``:
the wheel's ``.so`` files NEED system libraries that pip never installs. This module reads each shared
object's ELF dynamic section (``DT_NEEDED``, ``DT_RPATH``, ``DT_RUNPATH``) in pure Python, drops what the
environment bundles, resolves the rest the way the dynamic loader would (``LD_LIBRARY_PATH``,
``/etc/ld.so.cache``, default directories), and names the Debian package that provides each file.

Standard library only (it runs inside any interpreter being captured). What was read is kept in a JSON cache
so that capturing a large environment twice costs a ``stat`` per file.
"""
from __future__ import annotations

import glob
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
from typing import Any, BinaryIO, Dict, List, Optional, Set, Tuple

__all__ = ["scan_native_libraries", "read_elf_dynamic", "classify_soname"]

CACHE_VERSION = 1
LD_SO_CACHE = "/etc/ld.so.cache"
DPKG_INFO_DIR = "/var/lib/dpkg/info"
DPKG_STATUS = "/var/lib/dpkg/status"

# ELF constants (System V gABI).
_PT_LOAD, _PT_DYNAMIC = 1, 2
_SHT_STRTAB, _SHT_DYNAMIC = 3, 6
_DT_NULL, _DT_NEEDED, _DT_STRTAB, _DT_SONAME, _DT_RPATH, _DT_RUNPATH = 0, 1, 5, 14, 15, 29
_MAX_TABLE = 1 << 20  # no sane program-header, section-header or dynamic table is larger
_MAX_STRING = 1 << 16
_MAX_CACHE_ENTRIES = 50000

# Loaded by the NVIDIA driver's user-space part, mounted into containers by the NVIDIA runtime: never install.
_DRIVER_RE = re.compile(
    r"^(?:libcuda|libcudadebugger|libnvcuvid|libnvoptix|libnvidia-.+|lib(?:GLX|EGL|GLESv1_CM|GLESv2)_nvidia)"
    r"\.so(?:\.\d+)*$"
)
# Exactly what glibc's own package (Debian libc6) ships; libcrypt (libxcrypt), libstdc++ and libgcc_s are not.
_LIBC_SONAMES = frozenset({
    "libc.so.6", "libm.so.6", "libmvec.so.1", "libpthread.so.0", "libdl.so.2", "librt.so.1", "libutil.so.1",
    "libresolv.so.2", "libanl.so.1", "libnsl.so.1", "libBrokenLocale.so.1", "libthread_db.so.1",
    "libc_malloc_debug.so.0", "libnss_compat.so.2", "libnss_dns.so.2", "libnss_files.so.2",
    "libnss_hesiod.so.2", "libmemusage.so", "libpcprofile.so", "libSegFault.so",
    "libc.so",  # musl's C library (musllinux wheels NEED it); every musl image has it
})
_LIBC_RE = re.compile(r"^(?:ld-linux[\w.-]*\.so\.\d+|ld64\.so\.\d+|ld\.so\.1|ld-musl-[\w.-]+\.so\.1)$")

# ld.so.cache "required" flag bits by (ELF class, e_machine); other architectures rely on the ELF check alone.
_LDCACHE_ARCH_FLAGS = {
    (2, 62): 0x0300,  # x86-64
    (1, 62): 0x0800,  # x32
    (1, 3): 0x0000,  # i386
    (2, 183): 0x0A00,  # AArch64
    (2, 21): 0x0500,  # ppc64
    (2, 22): 0x0400,  # s390x
    (2, 43): 0x0100,  # sparc64
}

Ident = Tuple[int, int, int]  # (EI_CLASS, EI_DATA, e_machine)


class _Truncated(Exception):
    """The file ends (or points) where an ELF structure should be."""


# --------------------------------------------------------------------------------------------- ELF reading


def _read_at(handle: BinaryIO, offset: int, size: int) -> bytes:
    if offset < 0 or size < 0 or size > _MAX_TABLE:
        raise _Truncated
    handle.seek(offset)
    data = handle.read(size)
    if len(data) != size:
        raise _Truncated
    return data


def _read_cstring(handle: BinaryIO, offset: int) -> str:
    handle.seek(offset)
    chunks: List[bytes] = []
    total = 0
    while True:
        chunk = handle.read(256)
        if not chunk:
            raise _Truncated
        end = chunk.find(b"\0")
        if end >= 0:
            chunks.append(chunk[:end])
            return os.fsdecode(b"".join(chunks))
        chunks.append(chunk)
        total += len(chunk)
        if total > _MAX_STRING:
            raise _Truncated


def _parse_elf(handle: BinaryIO) -> Optional[Dict[str, Any]]:
    ident = handle.read(16)
    if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
        return None
    is64 = ident[4] == 2
    end = "<" if ident[5] == 1 else ">"
    if is64:
        (_, machine, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, _) = struct.unpack(
            end + "HHIQQQIHHHHHH", _read_at(handle, 16, 48))
        ph_fmt, sh_fmt, dyn_fmt = end + "IIQQQQQQ", end + "IIQQQQIIQQ", end + "qQ"
    else:
        (_, machine, _, _, phoff, shoff, _, _, phentsize, phnum, shentsize, shnum, _) = struct.unpack(
            end + "HHIIIIIHHHHHH", _read_at(handle, 16, 36))
        ph_fmt, sh_fmt, dyn_fmt = end + "IIIIIIII", end + "IIIIIIIIII", end + "iI"
    ph_size, sh_size, dyn_size = struct.calcsize(ph_fmt), struct.calcsize(sh_fmt), struct.calcsize(dyn_fmt)

    sections_cache: List[List[Tuple[int, ...]]] = []

    def section_header(index: int) -> Tuple[int, ...]:
        """(sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size, sh_link, sh_info, ...) of one section."""
        return struct.unpack(sh_fmt, _read_at(handle, shoff + index * shentsize, sh_size))

    def sections() -> List[Tuple[int, ...]]:
        """Every section header, read only when the program headers do not suffice."""
        if not sections_cache:
            out: List[Tuple[int, ...]] = []
            if shoff and shentsize >= sh_size:
                count = shnum or section_header(0)[5]  # extended numbering: count in section 0's sh_size
                table = _read_at(handle, shoff, count * shentsize)
                out = [struct.unpack_from(sh_fmt, table, i * shentsize) for i in range(count)]
            sections_cache.append(out)
        return sections_cache[0]

    if phnum == 0xFFFF and shoff:  # PN_XNUM: the real count is in section 0's sh_info
        phnum = section_header(0)[7]
    loads: List[Tuple[int, int, int]] = []  # (vaddr, offset, filesz)
    dynamic: Optional[Tuple[int, int]] = None  # (offset, size)
    if phoff and phnum and phentsize >= ph_size:
        table = _read_at(handle, phoff, phnum * phentsize)
        for i in range(phnum):
            fields = struct.unpack_from(ph_fmt, table, i * phentsize)
            if is64:
                p_type, p_offset, p_vaddr, p_filesz = fields[0], fields[2], fields[3], fields[5]
            else:
                p_type, p_offset, p_vaddr, p_filesz = fields[0], fields[1], fields[2], fields[4]
            if p_type == _PT_LOAD:
                loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == _PT_DYNAMIC:
                dynamic = (p_offset, p_filesz)
    strtab_from_section: Optional[int] = None
    if dynamic is None:
        secs = sections()
        for sec in secs:
            if sec[1] == _SHT_DYNAMIC:
                dynamic = (sec[4], sec[5])
                if 0 <= sec[6] < len(secs):
                    strtab_from_section = secs[sec[6]][4]
                break
    info: Dict[str, Any] = {
        "ident": [ident[4], ident[5], machine], "needed": [], "rpath": [], "runpath": [], "soname": None,
    }
    if dynamic is None:  # static executable or object file: needs nothing
        return info

    raw = _read_at(handle, dynamic[0], min(dynamic[1], _MAX_TABLE))
    strtab_addr: Optional[int] = None
    entries: List[Tuple[int, int]] = []
    for at in range(0, len(raw) - dyn_size + 1, dyn_size):
        tag, value = struct.unpack_from(dyn_fmt, raw, at)
        if tag == _DT_NULL:
            break
        if tag == _DT_STRTAB:
            strtab_addr = value
        elif tag in (_DT_NEEDED, _DT_SONAME, _DT_RPATH, _DT_RUNPATH):
            entries.append((tag, value))
    if not entries:
        return info
    if strtab_addr is None:
        raise _Truncated
    strtab = _vaddr_to_offset(strtab_addr, loads)
    if strtab is None:
        strtab = strtab_from_section
    if strtab is None:  # fall back on the section whose address is the string table's (.dynstr)
        for sec in sections():
            if sec[1] == _SHT_STRTAB and sec[3] == strtab_addr:
                strtab = sec[4]
                break
    if strtab is None:
        if loads:
            raise _Truncated
        strtab = strtab_addr  # no segments at all: addresses are file offsets
    for tag, value in entries:
        text = _read_cstring(handle, strtab + value)
        if tag == _DT_NEEDED:
            info["needed"].append(text)
        elif tag == _DT_SONAME:
            info["soname"] = text
        else:
            info["rpath" if tag == _DT_RPATH else "runpath"].extend(p for p in text.split(":") if p)
    return info


def _vaddr_to_offset(addr: int, loads: List[Tuple[int, int, int]]) -> Optional[int]:
    for vaddr, offset, filesz in loads:
        if vaddr <= addr < vaddr + filesz:
            return addr - vaddr + offset
    return None


def read_elf_dynamic(path: str) -> Optional[Dict[str, Any]]:
    """NEEDED sonames, SONAME, RPATH and RUNPATH entries of an ELF file; None if it is not (whole) ELF.

    Reads only the headers, the dynamic table and the strings it names, so a 1 GB ``libtorch_cuda.so`` costs
    a few small reads.
    """
    try:
        with open(path, "rb") as handle:
            return _parse_elf(handle)
    except (OSError, struct.error, _Truncated, ValueError, OverflowError, IndexError):
        return None


def _elf_ident(path: str) -> Optional[Ident]:
    """Class, byte order and machine of an ELF file, to refuse another architecture's library."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[5] not in (1, 2):
        return None
    (machine,) = struct.unpack_from("<H" if head[5] == 1 else ">H", head, 18)
    return head[4], head[5], machine


# ------------------------------------------------------------------------------------- system resolution


def parse_ld_so_cache(data: bytes) -> Optional[Dict[str, List[Tuple[int, int, str]]]]:
    """soname -> [(flags, hwcap, path)] from glibc's ``ld.so.cache`` ("glibc-ld.so.cache1.1" format).

    Also finds the new table behind the old "ld.so-1.7.0" header (glibc < 2.32 wrote both). None when the
    data is in no format this reads, so that the caller can ask ``ldconfig -p``.
    """
    magic = b"glibc-ld.so.cache1.1"
    if data.startswith(magic):
        base = 0
    elif data.startswith(b"ld.so-1.7.0") and len(data) >= 16:
        (old_count,) = struct.unpack_from("=I", data, 12)
        start = 16 + old_count * 12
        base = data.find(magic, start, start + len(magic) + 8)  # the new table is aligned after the old
        if base < 0:
            return None
    else:
        return None
    if len(data) < base + 48:
        return None
    order = {2: "<", 3: ">"}.get(data[base + 28] & 3, "=")
    count, strings_len = struct.unpack_from(order + "II", data, base + 20)
    if base + 48 + count * 24 > len(data):
        return None
    out: Dict[str, List[Tuple[int, int, str]]] = {}
    for i in range(count):
        flags, key, value, _, hwcap = struct.unpack_from(order + "iIIIQ", data, base + 48 + i * 24)
        names = []
        for offset in (key, value):
            start = base + offset
            stop = data.find(b"\0", start)
            if start >= len(data) or stop < 0:
                break
            names.append(os.fsdecode(data[start:stop]))
        if len(names) == 2:
            out.setdefault(names[0], []).append((flags, hwcap, names[1]))
    return out


_LDCONFIG_LINE = re.compile(r"^\s+(\S+)\s+\(([^)]*)\)\s+=>\s+(.+?)\s*$")


def _ldconfig_p() -> Dict[str, List[Tuple[int, int, str]]]:
    """``ldconfig -p`` as a fallback; flags are unknown (-1), so only the ELF check filters architectures."""
    for tool in ("/sbin/ldconfig", "/usr/sbin/ldconfig"):
        if not os.access(tool, os.X_OK):
            continue
        try:
            result = subprocess.run([tool, "-p"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    timeout=20, env=dict(os.environ, LC_ALL="C"), check=False)
        except (OSError, subprocess.SubprocessError):
            continue
        out: Dict[str, List[Tuple[int, int, str]]] = {}
        for line in os.fsdecode(result.stdout).splitlines():
            match = _LDCONFIG_LINE.match(line)
            if match:
                hwcap = 1 if "hwcap" in match.group(2) else 0
                out.setdefault(match.group(1), []).append((-1, hwcap, match.group(3)))
        return out
    return {}


class _Resolver:
    """Finds a soname on this system the way ld.so does, for the architecture of the object needing it."""

    def __init__(self) -> None:
        self._entries: Optional[Dict[str, List[Tuple[int, int, str]]]] = None
        self._idents: Dict[str, Optional[Ident]] = {}
        self._resolved: Dict[Tuple[str, Optional[Ident]], Optional[str]] = {}
        self.library_path = [d for d in re.split("[:;]", os.environ.get("LD_LIBRARY_PATH", "")) if d]
        multiarch = getattr(sys.implementation, "_multiarch", None)
        triplets = [f"/lib/{multiarch}", f"/usr/lib/{multiarch}"] if multiarch else []
        self.default_dirs = triplets + ["/lib64", "/usr/lib64", "/lib", "/usr/lib"]

    def _cache_entries(self) -> Dict[str, List[Tuple[int, int, str]]]:
        if self._entries is None:
            parsed = None
            try:
                with open(LD_SO_CACHE, "rb") as handle:
                    parsed = parse_ld_so_cache(handle.read())
            except (OSError, struct.error):
                parsed = None
            self._entries = parsed if parsed is not None else _ldconfig_p()
        return self._entries

    def matches(self, path: str, want: Optional[Ident]) -> bool:
        if path not in self._idents:
            self._idents[path] = _elf_ident(path) if os.path.isfile(path) else None
        found = self._idents[path]
        return found is not None and (want is None or found == want)

    def resolve(self, soname: str, want: Optional[Ident]) -> Optional[str]:
        key = (soname, want)
        if key not in self._resolved:
            self._resolved[key] = self._resolve(soname, want)
        return self._resolved[key]

    def _resolve(self, soname: str, want: Optional[Ident]) -> Optional[str]:
        if "/" in soname:  # a NEEDED path is opened as is
            return soname if self.matches(soname, want) else None
        for directory in self.library_path:
            candidate = os.path.join(directory, soname)
            if self.matches(candidate, want):
                return candidate
        required = _LDCACHE_ARCH_FLAGS.get((want[0], want[2])) if want else None
        entries = sorted(self._cache_entries().get(soname, ()), key=lambda e: e[1] != 0)  # plain before hwcaps
        for flags, _, path in entries:
            if flags != -1 and required is not None and (
                    flags & 0xFF not in (1, 3) or flags & 0xFF00 != required):
                continue
            if self.matches(path, want):
                return path
        for directory in self.default_dirs:
            candidate = os.path.join(directory, soname)
            if self.matches(candidate, want):
                return candidate
        return None


def classify_soname(soname: str) -> Optional[str]:
    """"driver" or "libc" when the name alone decides, else None (then it is "system" or "missing")."""
    base = os.path.basename(soname)
    if _DRIVER_RE.match(base):
        return "driver"
    if base in _LIBC_SONAMES or _LIBC_RE.match(base):
        return "libc"
    return None


# ------------------------------------------------------------------------------------------ dpkg owners


def _usr_twin(path: str) -> Optional[str]:
    """The other spelling of a path under Debian's merged /usr (/lib/x <-> /usr/lib/x)."""
    parts = path.split("/")
    merged = {"lib", "lib32", "lib64", "libx32", "bin", "sbin"}
    if len(parts) > 3 and parts[1] == "usr" and parts[2] in merged:
        return path[4:]
    if len(parts) > 2 and parts[1] in merged:
        return "/usr" + path
    return None


def _spellings(path: str) -> List[str]:
    """Every name dpkg may know the file by: as found, through its real directory, as its real file."""
    out: List[str] = []
    for name in (path, os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path)),
                 os.path.realpath(path)):
        for spelling in (name, _usr_twin(name)):
            if spelling and spelling not in out:
                out.append(spelling)
    return out


def _dpkg_stamp() -> Optional[List[int]]:
    try:
        info = os.stat(DPKG_INFO_DIR).st_mtime_ns
    except OSError:
        return None
    try:
        status = os.stat(DPKG_STATUS).st_mtime_ns
    except OSError:
        status = 0
    return [info, status]


def _scan_dpkg_lists(paths: List[str]) -> Dict[str, Optional[str]]:
    """Owner package of each path, from one pass over dpkg's ``*.list`` files (no ``dpkg -S`` per file)."""
    spellings = {path: _spellings(path) for path in paths}
    wanted = {os.fsencode(s) for names in spellings.values() for s in names}
    owner_of: Dict[bytes, str] = {}
    for list_file in sorted(glob.glob(os.path.join(DPKG_INFO_DIR, "*.list"))):
        try:
            with open(list_file, "rb") as handle:
                lines = handle.read().split(b"\n")
        except OSError:
            continue
        package = os.path.basename(list_file)[:-len(".list")].split(":")[0]
        for line in lines:
            if line in wanted and line not in owner_of:
                owner_of[line] = package
    result: Dict[str, Optional[str]] = {}
    for path, names in spellings.items():
        result[path] = next((owner_of[os.fsencode(s)] for s in names if os.fsencode(s) in owner_of), None)
    return result


def _dpkg_owners(paths: List[str], cache: Dict[str, Any]) -> Tuple[Dict[str, Optional[str]], bool]:
    """Owners of paths, reusing the cached ones while dpkg's database is unchanged; (owners, cache changed)."""
    stamp = _dpkg_stamp()
    if stamp is None:
        return {path: None for path in paths}, False
    section = cache.get("dpkg")
    known: Dict[str, Any] = {}
    if isinstance(section, dict) and section.get("stamp") == stamp and isinstance(section.get("owners"), dict):
        known = section["owners"]
    todo = [path for path in paths if not (path in known and (known[path] is None or isinstance(known[path], str)))]
    changed = False
    if todo:
        known = dict(known)
        known.update(_scan_dpkg_lists(todo))
        changed = True
    if changed or not isinstance(section, dict) or section.get("stamp") != stamp:
        cache["dpkg"] = {"stamp": stamp, "owners": known}
        changed = True
    return {path: known.get(path) for path in paths}, changed


# ------------------------------------------------------------------------------------------------ cache


def _load_cache(cache_file: Optional[str]) -> Dict[str, Any]:
    if not cache_file:
        return {}
    try:
        with open(cache_file, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("elf"), dict):
        return {}
    if not isinstance(data.get("dpkg"), dict):
        data["dpkg"] = None
    return data


def _save_cache(cache_file: str, data: Dict[str, Any]) -> None:
    """Atomic write (temp file + rename in the same directory); a cache that cannot be written is skipped."""
    tmp = None
    try:
        directory = os.path.dirname(os.path.abspath(cache_file))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".native-libs-", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, separators=(",", ":"))
        os.replace(tmp, cache_file)
        tmp = None
    except (OSError, ValueError, TypeError):
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _stat_key(path: str) -> Optional[List[int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _valid_info(info: Any) -> bool:
    """A cache entry written by someone else (or damaged) must not crash the scan: check its shape."""
    if info is None:
        return True
    if not isinstance(info, dict) or not isinstance(info.get("soname"), (str, type(None))):
        return False
    ident = info.get("ident")
    if not (isinstance(ident, list) and len(ident) == 3 and all(type(i) is int for i in ident)):
        return False
    lists = [info.get(key) for key in ("needed", "rpath", "runpath")]
    return all(isinstance(items, list) and all(isinstance(s, str) for s in items) for items in lists)


# ------------------------------------------------------------------------------------------------- scan


def _expand_origin(entry: str, origin: str) -> Optional[str]:
    expanded = entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
    return None if "$" in expanded else expanded  # $LIB / $PLATFORM: cannot tell which, skip


def scan_native_libraries(shared_objects: dict[str, list[str]], cache_file: str | None = None) -> list[dict]:
    """The sonames that the environment's shared objects NEED and do not bundle, each resolved and classified.

    ``shared_objects`` maps a distribution name to the absolute paths of the ELF files it installed. Returns
    ``[{"soname", "status", "path", "package", "needed_by"}]`` sorted by soname, where status is "driver"
    (the NVIDIA driver provides it at run time: never install), "libc" (every base image has it), "system"
    (found here; ``package`` names the Debian package when dpkg knows the file) or "missing" (found nowhere:
    optional plugins such as NCCL's libfabric). ``cache_file`` keeps what was read; any problem with it only
    costs a re-read.
    """
    cache = _load_cache(cache_file)
    elf_cache: Dict[str, Any] = cache.get("elf", {}) if cache else {}
    new_elf: Dict[str, Any] = {}
    gone: Set[str] = set()  # listed but no longer on disk
    dirty = not cache and bool(cache_file)

    infos: Dict[str, Dict[str, Any]] = {}  # path -> ELF info, ELF files only
    owners: Dict[str, List[str]] = {}  # path -> distributions installing it
    for dist, paths in shared_objects.items():
        for path in paths:
            path = os.path.abspath(path)
            owners.setdefault(path, []).append(dist)
    for path in owners:
        key = _stat_key(path)
        if key is None:
            gone.add(path)
            dirty = dirty or path in elf_cache
            continue
        cached = elf_cache.get(path)
        if isinstance(cached, dict) and cached.get("stat") == key and _valid_info(cached.get("info")):
            info = cached["info"]
        else:
            info = read_elf_dynamic(path)
            dirty = True
        new_elf[path] = {"stat": key, "info": info}
        if info is not None:
            infos[path] = info

    bundled = {os.path.basename(path) for path in infos}
    bundled.update(info["soname"] for info in infos.values() if isinstance(info.get("soname"), str))
    resolver = _Resolver()
    wanted: Dict[str, Tuple[Optional[Ident], Set[str]]] = {}  # soname -> (ident of first needer, distributions)
    for path in sorted(infos):
        info = infos[path]
        ident: Optional[Ident] = tuple(info["ident"])  # type: ignore[assignment]
        origin = os.path.dirname(path)
        for soname in info["needed"]:
            if soname in bundled or os.path.basename(soname) in bundled:
                continue
            if _found_via_rpath(soname, info, origin, ident, resolver):
                continue
            wanted.setdefault(soname, (ident, set()))[1].update(owners[path])

    rows: List[Dict[str, Any]] = []
    for soname in sorted(wanted):
        ident, dists = wanted[soname]
        path = resolver.resolve(soname, ident)
        status = classify_soname(soname) or ("system" if path else "missing")
        rows.append({"soname": soname, "status": status, "path": path, "package": None,
                     "needed_by": sorted(dists)})

    system_paths = sorted({row["path"] for row in rows if row["status"] == "system"})
    if system_paths:
        found, changed = _dpkg_owners(system_paths, cache)
        dirty = dirty or changed
        for row in rows:
            if row["status"] == "system":
                row["package"] = found.get(row["path"])

    if cache_file and dirty:
        if len(elf_cache) + len(new_elf) <= _MAX_CACHE_ENTRIES:  # keep other environments sharing this cache
            new_elf = {**{p: e for p, e in elf_cache.items() if p not in gone}, **new_elf}
        _save_cache(cache_file, {"version": CACHE_VERSION, "elf": new_elf, "dpkg": cache.get("dpkg")})
    return rows


def _found_via_rpath(soname: str, info: Dict[str, Any], origin: str, ident: Optional[Ident],
                     resolver: _Resolver) -> bool:
    """Whether RPATH/RUNPATH finds the soname in a place of the object's own (not the system's copy)."""
    for entry in list(info.get("runpath", [])) + list(info.get("rpath", [])):
        directory = _expand_origin(entry, origin)
        if not directory or not os.path.isabs(directory):  # relative entries depend on the cwd: ignore
            continue
        candidate = os.path.join(directory, soname)
        if resolver.matches(candidate, ident):
            system = resolver.resolve(soname, ident)
            try:
                if system and os.path.samefile(system, candidate):
                    return False  # an RPATH into a system directory bundles nothing
            except OSError:
                pass
            return True
    return False

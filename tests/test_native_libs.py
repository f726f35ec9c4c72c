"""The native-library scan, on real ELF files: this machine's, and tiny libraries built here with ``cc``.

``readelf`` (binutils) and ``dpkg -S`` serve as oracles where installed; tests that build libraries skip
only when there is no C compiler.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest

from jupyter_yolosnap.capture import native_libs
from jupyter_yolosnap.capture.native_libs import classify_soname, read_elf_dynamic, scan_native_libraries

CC = shutil.which("cc") or shutil.which("gcc")
READELF = shutil.which("readelf")
DPKG = shutil.which("dpkg")
LIB_DYNLOAD = sysconfig.get_config_var("DESTSHARED") or os.path.join(sys.base_prefix, "lib", "lib-dynload")

needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (cc)")
needs_readelf = pytest.mark.skipif(READELF is None, reason="no readelf (apt-get install binutils)")


# ------------------------------------------------------------------------------------------------ helpers


def ssl_extension() -> str:
    found = glob.glob(os.path.join(LIB_DYNLOAD, "_ssl.*so"))
    if not found:
        pytest.skip("this Python has no _ssl extension module in lib-dynload")
    return found[0]


def readelf_dynamic(path: str) -> dict:
    """What binutils says the dynamic section holds, in read_elf_dynamic's shape."""
    out = subprocess.run([READELF, "-dW", path], capture_output=True, text=True, check=False).stdout

    def entries(kind: str, label: str) -> list[str]:
        return re.findall(rf"\({kind}\)\s+{label}: \[(.*)\]", out)

    soname = entries("SONAME", "Library soname")
    return {
        "needed": entries("NEEDED", "Shared library"),
        "rpath": [p for s in entries("RPATH", "Library rpath") for p in s.split(":") if p],
        "runpath": [p for s in entries("RUNPATH", "Library runpath") for p in s.split(":") if p],
        "soname": soname[0] if soname else None,
    }


def without_ident(info: dict) -> dict:
    return {k: v for k, v in info.items() if k != "ident"}


def cc_shared(out: Path, source: str, *args: str, soname: str | None = None) -> Path:
    """Build a shared library from C source (extra args are linker inputs/flags, in order)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    src = out.with_suffix(out.suffix + ".c")
    src.write_text(source)
    argv = [CC, "-shared", "-fPIC", "-o", str(out), str(src), "-Wl,--no-as-needed"]
    if soname:
        argv.append(f"-Wl,-soname,{soname}")
    done = subprocess.run(argv + list(args), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv + list(args))} failed:\n{done.stderr}")
    return out


def stub(directory: Path, soname: str, symbol: str = "stub_fn") -> Path:
    """A library that exists only so another can be linked against it (and can then be deleted)."""
    return cc_shared(directory / soname, f"int {symbol}(void) {{ return 0; }}\n", soname=soname)


def dpkg_owner(path: str) -> str | None:
    """``dpkg -S``'s answer for a file, trying both spellings of merged /usr: the oracle for package names."""
    if DPKG is None:
        return None
    real = os.path.realpath(path)
    for candidate in dict.fromkeys([path, real, "/usr" + path, real.replace("/usr/", "/", 1)]):
        done = subprocess.run([DPKG, "-S", candidate], capture_output=True, text=True, check=False)
        if done.returncode == 0 and ":" in done.stdout:
            return done.stdout.split(":")[0].split(",")[0].strip()
    return None


def rows_by_soname(rows: list[dict]) -> dict[str, dict]:
    return {row["soname"]: row for row in rows}


def build_elf(path: Path, is64: bool, big: bool, machine: int, needed: list[str],
              runpath: str | None = None, soname: str | None = None) -> Path:
    """A minimal ELF shared object of any class and byte order (no cross compiler needed); readelf reads it."""
    end = ">" if big else "<"
    strtab, offsets = b"\0", []
    for text in needed + [s for s in (runpath, soname) if s]:
        offsets.append(len(strtab))
        strtab += text.encode() + b"\0"
    ehsize, phentsize = (64, 56) if is64 else (52, 32)
    phoff = ehsize
    str_off = phoff + 2 * phentsize
    dyn_off = (str_off + len(strtab) + 7) & ~7
    base = 0x400000
    tags = [(1, o) for o in offsets[:len(needed)]]
    rest = iter(offsets[len(needed):])
    if runpath:
        tags.append((29, next(rest)))
    if soname:
        tags.append((14, next(rest)))
    tags += [(5, base + str_off), (10, len(strtab)), (0, 0)]
    dyn = b"".join(struct.pack(end + ("qQ" if is64 else "iI"), t, v) for t, v in tags)
    total = dyn_off + len(dyn)
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 2 if big else 1, 1, 0]) + bytes(8)
    if is64:
        header = ident + struct.pack(end + "HHIQQQIHHHHHH", 3, machine, 1, 0, phoff, 0, 0, ehsize, phentsize,
                                     2, 64, 0, 0)
        phdrs = struct.pack(end + "IIQQQQQQ", 1, 5, 0, base, base, total, total, 0x1000)
        phdrs += struct.pack(end + "IIQQQQQQ", 2, 6, dyn_off, base + dyn_off, base + dyn_off, len(dyn), len(dyn), 8)
    else:
        header = ident + struct.pack(end + "HHIIIIIHHHHHH", 3, machine, 1, 0, phoff, 0, 0, ehsize, phentsize,
                                     2, 40, 0, 0)
        phdrs = struct.pack(end + "IIIIIIII", 1, 0, base, base, total, total, 5, 0x1000)
        phdrs += struct.pack(end + "IIIIIIII", 2, dyn_off, base + dyn_off, base + dyn_off, len(dyn), len(dyn), 6, 4)
    data = header + phdrs + strtab
    path.write_bytes(data + bytes(dyn_off - len(data)) + dyn)
    return path


# ----------------------------------------------------------------------------------------------- parsing


def test_reads_the_ssl_extension_module():
    info = read_elf_dynamic(ssl_extension())
    assert info is not None
    assert "libssl.so.3" in info["needed"] or any(n.startswith("libssl.so") for n in info["needed"])
    assert any(n.startswith("libcrypto.so") for n in info["needed"])
    assert "libc.so.6" in info["needed"]


@needs_readelf
def test_agrees_with_readelf_on_every_lib_dynload_module():
    paths = sorted(glob.glob(os.path.join(LIB_DYNLOAD, "*.so")))
    assert paths
    for path in paths:
        info = read_elf_dynamic(path)
        assert info is not None, path
        assert without_ident(info) == readelf_dynamic(path), path


@needs_readelf
@pytest.mark.parametrize("is64,big,machine", [(True, True, 21), (False, True, 20), (False, False, 40),
                                              (True, False, 183)])
def test_reads_both_classes_and_byte_orders(tmp_path, is64, big, machine):
    path = build_elf(tmp_path / "lib.so", is64, big, machine, ["libfoo.so.1", "libbar.so.2"],
                     runpath="$ORIGIN/../lib:/opt/x", soname="libbuilt.so.3")
    info = read_elf_dynamic(str(path))
    assert info == {"ident": [2 if is64 else 1, 2 if big else 1, machine], **readelf_dynamic(str(path))}
    assert info["needed"] == ["libfoo.so.1", "libbar.so.2"]
    assert info["runpath"] == ["$ORIGIN/../lib", "/opt/x"] and info["soname"] == "libbuilt.so.3"


@needs_cc
@needs_readelf
def test_reads_a_real_32bit_library(tmp_path):
    """Built with the system linker in i386 mode (no 32-bit libc needed)."""
    ld = shutil.which("ld")
    objects = []
    for name, body in (("b", "int g(void){return 1;}"), ("a", "int g(void); int f(void){return g();}")):
        (tmp_path / f"{name}.c").write_text(body)
        done = subprocess.run([CC, "-m32", "-fPIC", "-c", "-o", str(tmp_path / f"{name}.o"),
                               str(tmp_path / f"{name}.c")], capture_output=True, check=False)
        if done.returncode != 0 or ld is None:
            pytest.skip("this compiler cannot build i386 objects")
        objects.append(tmp_path / f"{name}.o")
    subprocess.run([ld, "-m", "elf_i386", "-shared", "-soname", "libb32.so.1", "-o", str(tmp_path / "libb32.so.1"),
                    str(objects[0])], check=True)
    subprocess.run([ld, "-m", "elf_i386", "-shared", "-soname", "liba32.so", "-o", str(tmp_path / "liba32.so"),
                    str(objects[1]), "-L", str(tmp_path), "-l:libb32.so.1", "-rpath", "$ORIGIN/x"], check=True)
    info = read_elf_dynamic(str(tmp_path / "liba32.so"))
    assert info == {"ident": [1, 1, 3], **readelf_dynamic(str(tmp_path / "liba32.so"))}
    assert info["needed"] == ["libb32.so.1"]


@needs_readelf
def test_falls_back_on_section_headers_without_program_headers(tmp_path):
    """With e_phnum zeroed, the dynamic section is found through SHT_DYNAMIC and its sh_link string table."""
    source = ssl_extension()
    data = bytearray(Path(source).read_bytes())
    assert data[4] == 2 and data[5] == 1, "this test patches a 64-bit little-endian header"
    struct.pack_into("<H", data, 56, 0)  # e_phnum
    patched = tmp_path / "nophdr.so"
    patched.write_bytes(bytes(data))
    info = read_elf_dynamic(str(patched))
    assert info is not None
    assert without_ident(info) == readelf_dynamic(source)


def test_non_elf_and_truncated_files_are_skipped(tmp_path):
    text = tmp_path / "libtext.so"
    text.write_text("/* GNU ld script */\nGROUP ( libc.so.6 )\n")
    empty = tmp_path / "empty.so"
    empty.write_bytes(b"")
    data = Path(ssl_extension()).read_bytes()
    info = read_elf_dynamic(ssl_extension())
    assert info is not None
    truncated = []
    for size in (3, 10, 40, 100, len(data) // 8):  # inside the ident, the header, the program headers, strings
        path = tmp_path / f"trunc{size}.so"
        path.write_bytes(data[:size])
        truncated.append(path)
    for path in [text, empty, tmp_path / "absent.so", *truncated]:
        assert read_elf_dynamic(str(path)) is None, path
    # the scan skips them silently and still reports the one good file
    rows = scan_native_libraries({"junk": [str(p) for p in [text, empty, *truncated]], "cpython": [ssl_extension()]})
    assert all(row["needed_by"] == ["cpython"] for row in rows)
    assert {row["soname"] for row in rows} == set(info["needed"])


@needs_readelf
def test_truncated_before_the_dynamic_section(tmp_path):
    source = ssl_extension()
    out = subprocess.run([READELF, "-d", source], capture_output=True, text=True, check=True).stdout
    offset = int(re.search(r"Dynamic section at offset (0x[0-9a-f]+)", out).group(1), 16)
    path = tmp_path / "cut.so"
    path.write_bytes(Path(source).read_bytes()[:offset + 8])
    assert read_elf_dynamic(str(path)) is None


# ----------------------------------------------------------------------------------------- classification


@pytest.mark.parametrize("soname,expected", [
    ("libcuda.so.1", "driver"), ("libcuda.so", "driver"), ("libnvidia-ml.so.1", "driver"),
    ("libnvidia-encode.so.1", "driver"), ("libnvidia-ptxjitcompiler.so.1", "driver"), ("libnvcuvid.so.1", "driver"),
    ("libcudadebugger.so.1", "driver"), ("libGLX_nvidia.so.0", "driver"),
    ("libc.so.6", "libc"), ("libm.so.6", "libc"), ("libpthread.so.0", "libc"), ("libdl.so.2", "libc"),
    ("librt.so.1", "libc"), ("libutil.so.1", "libc"), ("libresolv.so.2", "libc"),
    ("ld-linux-x86-64.so.2", "libc"), ("ld-linux-aarch64.so.1", "libc"),
    ("libcudart.so.12", None), ("libcrypt.so.1", None), ("libstdc++.so.6", None), ("libgcc_s.so.1", None),
    ("libGL.so.1", None), ("libnvrtc.so.12", None), ("libz.so.1", None),
])
def test_classify_by_name(soname, expected):
    assert classify_soname(soname) == expected


def test_libc_and_system_libraries_of_the_ssl_module():
    rows = rows_by_soname(scan_native_libraries({"cpython": [ssl_extension()]}))
    assert rows["libc.so.6"]["status"] == "libc"
    assert rows["libc.so.6"]["package"] is None
    ssl = next(row for name, row in rows.items() if name.startswith("libssl.so"))
    if ssl["status"] == "missing":
        pytest.skip("no system libssl (this Python bundles its own)")
    assert ssl["status"] == "system"
    assert os.path.isfile(ssl["path"])
    assert ssl["needed_by"] == ["cpython"]
    assert ssl["package"] == dpkg_owner(ssl["path"])
    if DPKG and ssl["soname"] == "libssl.so.3":
        assert ssl["package"] == "libssl3"


@needs_cc
def test_bundled_through_origin_rpath_is_dropped_and_zlib_is_system(tmp_path):
    pkg = tmp_path / "site-packages" / "mypkg"
    cc_shared(pkg / "mypkg.libs" / "libhelper-1a2b.so.1", "int helper(void){return 1;}\n",
              soname="libhelper-1a2b.so.1")
    main = cc_shared(pkg / "_core.so", "#include <zlib.h>\nint helper(void);\n"
                     "const char *v(void){ helper(); return zlibVersion(); }\n",
                     f"-L{pkg / 'mypkg.libs'}", "-l:libhelper-1a2b.so.1", "-l:libz.so.1",
                     "-Wl,-rpath,$ORIGIN/mypkg.libs")
    assert "libhelper-1a2b.so.1" in read_elf_dynamic(str(main))["needed"]
    rows = rows_by_soname(scan_native_libraries({"mypkg": [str(main)]}))  # helper not listed: found by RPATH
    assert "libhelper-1a2b.so.1" not in rows
    zlib = rows["libz.so.1"]
    assert zlib["status"] == "system" and zlib["needed_by"] == ["mypkg"]
    assert zlib["package"] == dpkg_owner(zlib["path"])
    if DPKG:
        assert zlib["package"] == "zlib1g"
    assert rows["libc.so.6"]["status"] == "libc"


@needs_cc
def test_package_found_whichever_merged_usr_spelling_resolves(tmp_path, monkeypatch):
    """Through LD_LIBRARY_PATH libz resolves under /usr/lib while dpkg may list only /lib (or the reverse)."""
    user = cc_shared(tmp_path / "_z.so", "int zlibVersion(void);\nint f(void){return zlibVersion();}\n",
                     "-l:libz.so.1")
    base = scan_native_libraries({"z": [str(user)]})
    system = rows_by_soname(base)["libz.so.1"]
    if system["status"] != "system" or _usr_twin_of(system["path"]) is None:
        pytest.skip("libz is not in a merged-/usr directory here")
    twin = _usr_twin_of(system["path"])
    if not os.path.isfile(twin):
        pytest.skip("this system has not merged /usr")
    monkeypatch.setenv("LD_LIBRARY_PATH", os.path.dirname(twin))
    row = rows_by_soname(scan_native_libraries({"z": [str(user)]}))["libz.so.1"]
    assert row["path"] == twin
    assert row["package"] == system["package"] == dpkg_owner(system["path"])


def _usr_twin_of(path: str) -> str | None:
    if path.startswith("/usr/lib/"):
        return path[4:]
    if path.startswith("/lib/"):
        return "/usr" + path
    return None


@needs_cc
def test_bundled_by_another_distribution_is_dropped(tmp_path):
    """torch's libc10.so NEEDed by torchvision: any environment file with that basename bundles it."""
    lib = stub(tmp_path / "site-packages" / "torch" / "lib", "libc10.so", "c10")
    # no RPATH: only the basename ties them
    user = cc_shared(tmp_path / "site-packages" / "torchvision" / "_C.so",
                     "int c10(void);\nint f(void){return c10();}\n", f"-L{lib.parent}", "-l:libc10.so")
    assert "libc10.so" in read_elf_dynamic(str(user))["needed"]
    rows = rows_by_soname(scan_native_libraries({"torch": [str(lib)], "torchvision": [str(user)]}))
    assert "libc10.so" not in rows
    assert set(rows) <= {"libc.so.6"}


@needs_cc
def test_bundled_under_another_file_name_by_its_soname(tmp_path):
    """A file installed as libfoo.so.1.2.3 whose SONAME is libfoo.so.1 bundles NEEDED libfoo.so.1."""
    lib = cc_shared(tmp_path / "pkg" / "libfoo.so.1.2.3", "int foo(void){return 1;}\n", soname="libfoo.so.1")
    (tmp_path / "link").mkdir()
    os.symlink(lib, tmp_path / "link" / "libfoo.so.1")
    user = cc_shared(tmp_path / "pkg" / "_ext.so", "int foo(void);\nint f(void){return foo();}\n",
                     f"-L{tmp_path / 'link'}", "-l:libfoo.so.1")
    rows = rows_by_soname(scan_native_libraries({"pkg": [str(lib), str(user)]}))
    assert "libfoo.so.1" not in rows


@needs_cc
def test_rpath_into_a_system_directory_bundles_nothing(tmp_path):
    probe = cc_shared(tmp_path / "probe.so", "int zlibVersion(void);\nint f(void){return zlibVersion();}\n",
                      "-l:libz.so.1")
    system = rows_by_soname(scan_native_libraries({"p": [str(probe)]}))["libz.so.1"]
    if system["status"] != "system":
        pytest.skip("no system zlib")
    user = cc_shared(tmp_path / "_ext.so", "int zlibVersion(void);\nint f(void){return zlibVersion();}\n",
                     "-l:libz.so.1", f"-Wl,-rpath,{os.path.dirname(system['path'])}")
    assert read_elf_dynamic(str(user))["runpath"] + read_elf_dynamic(str(user))["rpath"]
    assert rows_by_soname(scan_native_libraries({"p": [str(user)]}))["libz.so.1"] == {**system, "needed_by": ["p"]}


@needs_cc
def test_unresolvable_soname_is_missing_and_ld_library_path_resolves_it(tmp_path, monkeypatch):
    stubs = tmp_path / "stubs"
    ghost = stub(stubs, "libyolosnap-ghost.so.7")
    user = cc_shared(tmp_path / "env" / "_plugin.so", "int stub_fn(void);\nint f(void){return stub_fn();}\n",
                     f"-L{stubs}", "-l:libyolosnap-ghost.so.7")
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    # present only in a directory the loader would search with LD_LIBRARY_PATH
    monkeypatch.setenv("LD_LIBRARY_PATH", str(stubs))
    row = rows_by_soname(scan_native_libraries({"nccl": [str(user)]}))["libyolosnap-ghost.so.7"]
    assert row == {"soname": "libyolosnap-ghost.so.7", "status": "system", "path": str(ghost),
                   "package": None, "needed_by": ["nccl"]}
    monkeypatch.delenv("LD_LIBRARY_PATH")
    row = rows_by_soname(scan_native_libraries({"nccl": [str(user)]}))["libyolosnap-ghost.so.7"]
    assert row == {"soname": "libyolosnap-ghost.so.7", "status": "missing", "path": None, "package": None,
                   "needed_by": ["nccl"]}
    ghost.unlink()
    monkeypatch.setenv("LD_LIBRARY_PATH", str(stubs))
    assert rows_by_soname(scan_native_libraries({"nccl": [str(user)]}))["libyolosnap-ghost.so.7"]["status"] == "missing"


@needs_cc
def test_libcuda_is_driver_found_or_not(tmp_path):
    stubs = tmp_path / "stubs"
    cuda = stub(stubs, "libcuda.so.1", "cuInit")
    user = cc_shared(tmp_path / "env" / "libtorch_cuda.so", "int cuInit(void);\nint f(void){return cuInit();}\n",
                     f"-L{stubs}", "-l:libcuda.so.1")
    cuda.unlink()
    row = rows_by_soname(scan_native_libraries({"torch": [str(user)]}))["libcuda.so.1"]
    assert row["status"] == "driver" and row["package"] is None and row["needed_by"] == ["torch"]


@needs_cc
def test_another_architectures_library_is_not_accepted(tmp_path):
    """An i386 object NEEDing libz.so.1 must not resolve to the x86-64 libz (and vice versa)."""
    ld = shutil.which("ld")
    (tmp_path / "a.c").write_text("int zlibVersion(void); int f(void){return zlibVersion();}\n")
    done = subprocess.run([CC, "-m32", "-fPIC", "-c", "-o", str(tmp_path / "a.o"), str(tmp_path / "a.c")],
                          capture_output=True, check=False)
    if done.returncode != 0 or ld is None:
        pytest.skip("this compiler cannot build i386 objects")
    (tmp_path / "b.c").write_text("int zlibVersion(void){return 0;}\n")
    subprocess.run([CC, "-m32", "-fPIC", "-c", "-o", str(tmp_path / "b.o"), str(tmp_path / "b.c")], check=True)
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    subprocess.run([ld, "-m", "elf_i386", "-shared", "-soname", "libz.so.1", "-o", str(stubs / "libz.so.1"),
                    str(tmp_path / "b.o")], check=True)
    user = tmp_path / "lib32user.so"
    subprocess.run([ld, "-m", "elf_i386", "-shared", "-o", str(user), str(tmp_path / "a.o"),
                    "-L", str(stubs), "-l:libz.so.1"], check=True)
    (stubs / "libz.so.1").unlink()
    row = rows_by_soname(scan_native_libraries({"x": [str(user)]}))["libz.so.1"]
    if row["path"] is not None:  # a multiarch host may have a real i386 zlib
        assert read_elf_dynamic(row["path"])["ident"][:1] == [1]
    else:
        assert row["status"] == "missing"


def test_ld_so_cache_parser_agrees_with_ldconfig():
    ldconfig = next((t for t in ("/sbin/ldconfig", "/usr/sbin/ldconfig") if os.access(t, os.X_OK)), None)
    if ldconfig is None or not os.path.isfile(native_libs.LD_SO_CACHE):
        pytest.skip("no ldconfig or no ld.so.cache")
    parsed = native_libs.parse_ld_so_cache(Path(native_libs.LD_SO_CACHE).read_bytes())
    assert parsed is not None
    ours = {(name, path) for name, entries in parsed.items() for _, _, path in entries}
    assert ours == {(name, path) for name, entries in native_libs._ldconfig_p().items() for _, _, path in entries}
    assert native_libs.parse_ld_so_cache(b"not a cache") is None
    assert native_libs.parse_ld_so_cache(Path(native_libs.LD_SO_CACHE).read_bytes()[:30]) is None


def test_merged_usr_spellings():
    assert native_libs._usr_twin("/lib/x86_64-linux-gnu/libz.so.1") == "/usr/lib/x86_64-linux-gnu/libz.so.1"
    assert native_libs._usr_twin("/usr/lib/x86_64-linux-gnu/libz.so.1") == "/lib/x86_64-linux-gnu/libz.so.1"
    assert native_libs._usr_twin("/usr/lib64/libz.so.1") == "/lib64/libz.so.1"
    assert native_libs._usr_twin("/opt/lib/libz.so.1") is None
    assert native_libs._usr_twin("/usr/local/lib/libz.so.1") is None


def test_no_dpkg_database_means_no_package(monkeypatch, tmp_path):
    monkeypatch.setattr(native_libs, "DPKG_INFO_DIR", str(tmp_path / "no-dpkg"))
    rows = scan_native_libraries({"cpython": [ssl_extension()]})
    assert rows and all(row["package"] is None for row in rows)


def test_result_shape_and_order():
    rows = scan_native_libraries({"b": [ssl_extension()], "a": [ssl_extension()]})
    assert [row["soname"] for row in rows] == sorted(row["soname"] for row in rows)
    for row in rows:
        assert set(row) == {"soname", "status", "path", "package", "needed_by"}
        assert row["status"] in {"system", "driver", "libc", "missing"}
        assert row["needed_by"] == ["a", "b"]
    assert scan_native_libraries({}) == []


# -------------------------------------------------------------------------------------------------- cache


@pytest.fixture
def env_objects(tmp_path) -> dict[str, list[str]]:
    """Copies of a few real extension modules, so the tests may rewrite them."""
    out: dict[str, list[str]] = {}
    for name in ("_ssl", "_ctypes", "zlib", "_bz2", "_sqlite3", "_hashlib"):
        found = glob.glob(os.path.join(LIB_DYNLOAD, f"{name}.*so"))
        if found:
            target = tmp_path / "env" / os.path.basename(found[0])
            target.parent.mkdir(exist_ok=True)
            shutil.copy2(found[0], target)
            out.setdefault(name.strip("_"), []).append(str(target))
    if len(out) < 2:
        pytest.skip("too few extension modules in lib-dynload")
    return out


def counting(monkeypatch, name: str) -> list:
    """Count calls to a module function (still calling it)."""
    calls: list = []
    real = getattr(native_libs, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(native_libs, name, wrapper)
    return calls


def forbid(monkeypatch, name: str) -> None:
    def boom(*args, **kwargs):
        raise AssertionError(f"{name} called although the cache should answer")

    monkeypatch.setattr(native_libs, name, boom)


def test_cached_scan_reads_no_elf_and_no_dpkg_lists(env_objects, tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "native-libs.json"
    first = scan_native_libraries(env_objects, str(cache))
    assert cache.is_file()
    with monkeypatch.context() as patch:
        forbid(patch, "read_elf_dynamic")
        forbid(patch, "_scan_dpkg_lists")
        assert scan_native_libraries(env_objects, str(cache)) == first
    assert scan_native_libraries(env_objects) == first  # and the same as without any cache


def test_changed_file_is_read_again(env_objects, tmp_path, monkeypatch):
    cache = tmp_path / "native-libs.json"
    scan_native_libraries(env_objects, str(cache))
    victim = env_objects["ssl"][0]
    replacement = next(p for k, v in env_objects.items() if k != "ssl" for p in v)
    shutil.copyfile(replacement, victim)  # rewritten in place: same inode, new size and mtime
    calls = counting(monkeypatch, "read_elf_dynamic")
    rows = scan_native_libraries(env_objects, str(cache))
    assert [c[0] for c in calls] == [victim]
    assert all(not r["soname"].startswith("libssl") or "ssl" not in r["needed_by"] for r in rows)
    calls.clear()
    os.utime(victim, ns=(time.time_ns(), time.time_ns() + 10_000_000_000))  # touch: only the mtime changes
    scan_native_libraries(env_objects, str(cache))
    assert [c[0] for c in calls] == [victim]
    calls.clear()
    scan_native_libraries(env_objects, str(cache))
    assert calls == []


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b'{"version": 1}',
                                     b'{"version": 1, "elf": {"X": {"stat": "bad", "info": 7}}, "dpkg": 5}'])
def test_corrupt_cache_is_ignored_and_rewritten(env_objects, tmp_path, content):
    expected = scan_native_libraries(env_objects)
    cache = tmp_path / "native-libs.json"
    cache.write_bytes(content.replace(b'"X"', json.dumps(env_objects["ssl"][0]).encode()))
    assert scan_native_libraries(env_objects, str(cache)) == expected
    data = json.loads(cache.read_text())
    assert data["version"] == native_libs.CACHE_VERSION
    assert set(data["elf"]) >= {p for paths in env_objects.values() for p in paths}
    assert scan_native_libraries(env_objects, str(cache)) == expected


def test_cache_entry_of_the_wrong_shape_is_read_again(env_objects, tmp_path, monkeypatch):
    cache = tmp_path / "native-libs.json"
    expected = scan_native_libraries(env_objects, str(cache))
    data = json.loads(cache.read_text())
    victim = env_objects["ssl"][0]
    good = data["elf"][victim]["info"]
    for bad in ({"needed": "libssl.so.3"}, {**good, "ident": [[1], 1, 62]}, {**good, "soname": 5},
                {**good, "needed": [None]}, "text"):
        data["elf"][victim]["info"] = bad
        cache.write_text(json.dumps(data))
        calls = counting(monkeypatch, "read_elf_dynamic")
        assert scan_native_libraries(env_objects, str(cache)) == expected
        assert [c[0] for c in calls] == [victim]
        monkeypatch.undo()


def test_dpkg_lookups_are_redone_when_dpkg_changes(env_objects, tmp_path, monkeypatch):
    if not os.path.isdir(native_libs.DPKG_INFO_DIR):
        pytest.skip("no dpkg database")
    cache = tmp_path / "native-libs.json"
    expected = scan_native_libraries(env_objects, str(cache))
    data = json.loads(cache.read_text())
    data["dpkg"]["stamp"] = [1, 2]  # as if packages were installed since
    cache.write_text(json.dumps(data))
    calls = counting(monkeypatch, "_scan_dpkg_lists")
    assert scan_native_libraries(env_objects, str(cache)) == expected
    assert len(calls) == 1
    assert json.loads(cache.read_text())["dpkg"]["stamp"] == native_libs._dpkg_stamp()


def test_unwritable_cache_never_fails_the_scan(env_objects, tmp_path):
    expected = scan_native_libraries(env_objects)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert scan_native_libraries(env_objects, str(blocker / "cache.json")) == expected  # parent is a file
    a_dir = tmp_path / "a-dir"
    a_dir.mkdir()
    assert scan_native_libraries(env_objects, str(a_dir)) == expected  # the cache path is a directory
    assert os.listdir(a_dir) == []
    assert sorted(os.listdir(tmp_path)) == sorted(["a-file", "a-dir", "env"])


def test_cache_directory_is_created_and_no_temp_files_leak(env_objects, tmp_path):
    cache = tmp_path / "deep" / "er" / "native-libs.json"
    scan_native_libraries(env_objects, str(cache))
    Path(env_objects["ssl"][0]).write_bytes(b"no longer ELF")
    scan_native_libraries(env_objects, str(cache))
    assert os.listdir(cache.parent) == ["native-libs.json"]


def test_cache_shared_by_two_environments_keeps_both(env_objects, tmp_path, monkeypatch):
    cache = tmp_path / "native-libs.json"
    names = sorted(env_objects)
    first = {name: env_objects[name] for name in names[: len(names) // 2]}
    second = {name: env_objects[name] for name in names[len(names) // 2:]}
    expected = (scan_native_libraries(first, str(cache)), scan_native_libraries(second, str(cache)))
    forbid(monkeypatch, "read_elf_dynamic")
    assert (scan_native_libraries(first, str(cache)), scan_native_libraries(second, str(cache))) == expected


def test_unchanged_scan_does_not_rewrite_the_cache(env_objects, tmp_path):
    cache = tmp_path / "native-libs.json"
    scan_native_libraries(env_objects, str(cache))
    before = os.stat(cache)
    scan_native_libraries(env_objects, str(cache))
    after = os.stat(cache)
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


# -------------------------------------------------------------------------------------------------- speed


def test_whole_interpreter_scan_and_cached_rescan(tmp_path, capsys):
    roots = dict.fromkeys([sysconfig.get_path("platlib"), sysconfig.get_path("purelib"), LIB_DYNLOAD])
    objects: dict[str, list[str]] = {}
    for root in roots:
        for directory, _, files in os.walk(root):
            for name in files:
                if name.endswith(".so") or ".so." in name:
                    top = os.path.relpath(directory, root).split(os.sep)[0]
                    objects.setdefault("lib-dynload" if root == LIB_DYNLOAD else top, []).append(
                        os.path.join(directory, name))
    count = sum(len(paths) for paths in objects.values())
    cache = tmp_path / "native-libs.json"
    start = time.perf_counter()
    first = scan_native_libraries(objects, str(cache))
    cold = time.perf_counter() - start
    start = time.perf_counter()
    second = scan_native_libraries(objects, str(cache))
    warm = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nnative-libs scan of {count} shared objects: {cold * 1000:.1f} ms, cached {warm * 1000:.1f} ms "
              f"({len(first)} sonames)")
    assert first == second
    assert any(row["status"] == "libc" for row in first)
    assert cold >= 3 * warm

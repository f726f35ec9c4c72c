"""Record the fat-binary headers of a real CUDA library as a test fixture (payloads left out).

    python tools/record_fatbin.py LIBRARY.so -o tests/fixtures/fatbin/NAME.json

The fixture keeps the ``.nv_fatbin`` section's size and, at their offsets in it, the bytes of every container
header and entry header: ``tests/test_fatbin.py`` rebuilds a sparse ELF file from them (zeros where the
compressed GPU code was) and reads its architectures with ``capture/fatbin.py``, so the parser is tested on a
real library's layout without shipping the library. Standard library only, plus this repository.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from jupyter_yolosnap.capture import fatbin  # noqa: E402


def record(path: str, keep: int = 1 << 16) -> dict:
    """The section's headers; of each entry header only its first ``keep`` bytes (32 hold what is read)."""
    with open(path, "rb") as handle:
        start, size = fatbin._fatbin_section(handle)
        headers = []
        at, end = start, start + size
        while at + 16 <= end:
            magic, _, header_size, payload = struct.unpack("<IHHQ", fatbin._read(handle, at, 16))
            if magic != fatbin.MAGIC:
                break
            headers.append([at - start, fatbin._read(handle, at, header_size).hex()])
            entry, stop = at + header_size, at + header_size + payload
            while entry + 32 <= stop:
                _, _, entry_header, entry_size = struct.unpack("<HHIQ", fatbin._read(handle, entry, 16))
                headers.append([entry - start, fatbin._read(handle, entry, min(entry_header, keep)).hex()])
                entry += entry_header + entry_size
            at = stop + (-stop) % 8
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"library": os.path.basename(path), "sha256": digest.hexdigest(), "section_size": size,
            "architectures": fatbin.architectures(path), "headers": headers}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library")
    parser.add_argument("-o", "--output", required=True, help="a .json file (.json.gz: compressed)")
    parser.add_argument("--keep", type=int, default=1 << 16, help="bytes kept of each entry header (32 suffice)")
    args = parser.parse_args()
    data = record(args.library, args.keep)
    opener = gzip.open if args.output.endswith(".gz") else open
    with opener(args.output, "wt", encoding="utf-8") as handle:
        json.dump(data, handle, indent=0)
        handle.write("\n")
    print(f"record_fatbin: {len(data['headers'])} headers, {data['architectures']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

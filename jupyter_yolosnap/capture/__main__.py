"""``python -m capture [--project DIR] [--cache FILE]``: print this interpreter's capture as JSON."""
from __future__ import annotations

import json
import sys

from . import capture_environment


def main(argv: list[str]) -> int:
    options = dict(zip(argv[::2], argv[1::2]))
    unknown = set(options) - {"--project", "--cache"}
    if unknown or len(argv) % 2:
        sys.stderr.write("usage: python -m capture [--project DIR] [--cache FILE]\n")
        return 2
    result = capture_environment(options.get("--project"), options.get("--cache"))
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

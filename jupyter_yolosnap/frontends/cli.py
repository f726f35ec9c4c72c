"""``yolosnap``: the command line for CI and terminals, over the same commands as ``%snapshot``.

Exit codes: 0 success (and, for ``diff``, identical), 1 ``diff`` found differences, 2 any error.
"""
from __future__ import annotations

import sys
from typing import Sequence

from .commands import execute, parse
from ..exceptions import UsageFailure, YolosnapError


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse(sys.argv[1:] if argv is None else argv, raising=True)
    except UsageFailure as err:  # one line, as every other error (--help and --version printed and exit 0)
        if err.status == 0:
            return 0
        print(str(err), file=sys.stderr)
        return 2
    try:
        outcome = execute(args)
    except YolosnapError as err:
        print(f"yolosnap: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("yolosnap: interrupted", file=sys.stderr)
        return 2
    print(outcome.shown)
    if outcome.last_line:
        print(outcome.last_line)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main())

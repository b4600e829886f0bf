"""python -m ondevice.features header OUT.h | vectors DIR [N]: write the C header or the shared test vectors."""
from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Tiny generator CLI for the twins' build scripts (no typer: it runs inside Makefiles and Gradle)."""
    from ondevice.features import c_tables, write_vectors
    from ondevice.fsutil import write_bytes_atomic

    if len(argv) == 2 and argv[0] == "header":
        write_bytes_atomic(Path(argv[1]), c_tables().encode())
        return 0
    if len(argv) in (2, 3) and argv[0] == "vectors":
        for p in write_vectors(argv[1], int(argv[2]) if len(argv) == 3 else 3):
            print(p)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Write the frontend headers for the C build from the Python twin (never re-derived in C).

    python gen_frontend_tables.py OUT/od_frontend_tables.h

writes ``od_frontend_tables.h`` (ondevice.features.c_tables(), verbatim: constants and tables, included only by
od_frontend.c) and, beside it, ``od_frontend_config.h`` (the #define lines only, for code that sizes buffers).
"""
from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    from ondevice.features import c_tables
    from ondevice.fsutil import write_bytes_atomic

    out = Path(argv[0])
    text = c_tables()
    defines = [ln for ln in text.splitlines() if ln.startswith("#define OD_FE_")]
    config = ("/* Generated from ondevice.features.c_tables() by firmware/tools/gen_frontend_tables.py; do not edit. */\n"
              "#ifndef OD_FRONTEND_CONFIG_H\n#define OD_FRONTEND_CONFIG_H\n\n" + "\n".join(defines) +
              "\n\n#endif /* OD_FRONTEND_CONFIG_H */\n")
    write_bytes_atomic(out.with_name("od_frontend_config.h"), config.encode())
    write_bytes_atomic(out, text.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

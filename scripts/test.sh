#!/usr/bin/env bash
# Set up (system packages, venv, pinned deps) and run the whole test suite. Extra args go to pytest.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bash scripts/setup.sh --with-tests
. .venv/bin/activate
set +e
python -m pytest "$@"
rc=$?
set -e
# pytest exit 5 means no test ran: that is a failure here.
if [ $rc -eq 5 ]; then echo "[test] no tests were collected" >&2; exit 1; fi
exit $rc

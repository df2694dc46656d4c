#!/usr/bin/env bash
# One command: measure aitre against direct nginx, nginx proxy_pass, a lean Python proxy and
# LiteLLM on this machine (see bench/README.md). Options go to `python -m bench.run`, e.g. --quick.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${AITRE_VENV:-.venv}/bin/python
[ -x "$PY" ] || { echo "no $PY: run ./scripts/test once first (it installs aitre and its dev tools)" >&2; exit 1; }
# psutil (RSS, CPU accounting) is a dev dependency; a venv made by ./scripts/run lacks it.
"$PY" -c 'import psutil' 2>/dev/null || { echo "bench: installing psutil into $PY's venv"; "$PY" -m pip install -q psutil; }
exec "$PY" -m bench.run "$@"

#!/usr/bin/env bash
# Builds the throwaway environment the anchors are measured in (never Heron's .venv, never uv.lock):
# Heron's locked runtime dependencies (same PySide6, pyqtgraph, numpy, pandas as our own benchmarks)
# plus finplot and vnpy installed WITHOUT their own dependency pins (finplot would pull PyQt6, vnpy
# pins PySide6 6.8), plus the few pure-Python/wheel packages vnpy's trader UI imports.
# Usage (from the repository root): bash tests/bench/anchors/scratch_env.sh [VENV_DIR]
set -euo pipefail
VENV="${1:-/tmp/heron-anchors}"
FINPLOT_VERSION="${FINPLOT_VERSION:-1.9.7}"
VNPY_VERSION="${VNPY_VERSION:-4.5.0}"
REQ="$(mktemp /tmp/heron-anchors-req.XXXXXX)"
trap 'rm -f "$REQ"' EXIT
uv venv --quiet --allow-existing --python 3.11 "$VENV"
uv export --frozen --no-dev --no-hashes --no-emit-project --quiet -o "$REQ"
uv pip install --quiet --python "$VENV/bin/python" -r "$REQ"
uv pip install --quiet --python "$VENV/bin/python" --no-deps "finplot==$FINPLOT_VERSION" "vnpy==$VNPY_VERSION"
# vnpy's trader UI imports these at import time (vnpy.trader.utility imports talib; ui.qt imports
# qdarkstyle, loguru; ui.widget imports qrcode, tzlocal); finplot needs python-dateutil.
uv pip install --quiet --python "$VENV/bin/python" deap loguru qdarkstyle qtpy qrcode ta-lib tzlocal \
    python-dateutil tqdm requests
"$VENV/bin/python" - <<'PY'
import importlib.metadata as m
for name in ("finplot", "vnpy", "PySide6-Essentials", "pyqtgraph", "numpy", "pandas"):
    print(f"{name} {m.version(name)}")
for absent in ("PyQt6", "PySide6-Addons"):
    try:
        m.version(absent)
    except m.PackageNotFoundError:
        continue
    raise SystemExit(f"{absent} must not be in the scratch env (two Qt bindings in one process)")
PY

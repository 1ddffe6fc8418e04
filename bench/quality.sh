#!/usr/bin/env bash
# Quality benchmark on real faces: bench/quality.sh [DATA_DIR [OUT_DIR]] [--ablations] [--seeds N] ...
# Defaults: DATA_DIR ../shared/data/maskproxy-dev, OUT_DIR bench/results/quality. See bench/quality.py --help.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-$here/../.venv/bin/python}
[[ -x $python ]] || python=python3
exec "$python" "$here/quality.py" "$@"

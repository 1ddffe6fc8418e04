#!/usr/bin/env bash
# Quality benchmark on real faces (README, "Quality"):
#   bench/quality.sh [--rows base,anchor,...] [--seed S]    the paired out-of-fold protocol (bench/quality.py)
#   bench/quality.sh --fold0 [--variants ...] [--seeds N]   the earlier fold-0 protocol (bench/quality_fold0.py)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-$here/../.venv/bin/python}
[[ -x $python ]] || python=python3
if [[ ${1:-} == --fold0 ]]; then
  shift
  exec "$python" "$here/quality_fold0.py" "$@"
fi
exec "$python" "$here/quality.py" "$@"

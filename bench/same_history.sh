#!/usr/bin/env bash
# Seed-fixed runs whose outputs a refactor must not change: run it before and after, compare the lists.
#   bench/same_history.sh CODE_DIR DEMO_DATA OUT     (CODE_DIR: a checkout, e.g. a `git worktree` of the old commit)
# Six runs (joint; ordinal age; mask with EMA and half-image CutMix; gender final fit; pretrained MobileNetV2;
# joint for 3 epochs) on a demo set (maskcls make-demo), then one line per file: path and md5 of its content,
# history.csv without its seconds column. Identical lists = the same training, epoch for epoch.
set -euo pipefail
code=$(cd "$1" && pwd); data=$2; out=$3
python=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
rm -rf "$out"; mkdir -p "$out"
run() { PYTHONPATH=$code "$python" -m maskcls "$@" --data "$data" --img-size 64 48 --batch-size 16 --workers 0 \
          --seed 3 --out "$out/runs" --cache-dir "$out/cache" > /dev/null; }
T=(--backbone test_resnet --no-pretrained)
run train-joint "${T[@]}" --epochs 2 --fold 0 --name joint
run train-age "${T[@]}" --epochs 2 --fold 1 --age-head ordinal --name age
run train-mask "${T[@]}" --epochs 2 --fold 0 --ema 0.9 --cutmix 1 --cutmix-mode halves --cutmix-partner rare --name mask
run train-gender "${T[@]}" --epochs 2 --fold none --name gender
run train-joint --backbone tv/mobilenet_v2 --pretrained --epochs 1 --fold 0 --name pretrained
run train-joint "${T[@]}" --epochs 3 --fold 0 --name joint3
cd "$out/runs"
for f in $(find . -name history.csv -o -name oof.csv -o -name metrics.json -o -name summary.json -o -name folds.csv | sort); do
  if [[ $f == */history.csv ]]; then
    sum=$("$python" -c "import pandas as pd,sys; print(pd.read_csv(sys.argv[1]).drop(columns='seconds').to_csv(index=False))" "$f" | md5sum)
  else
    sum=$(md5sum < "$f")
  fi
  echo "$f ${sum%% *}"
done

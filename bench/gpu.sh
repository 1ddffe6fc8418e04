#!/usr/bin/env bash
# The GPU path in one command: bench/gpu.sh [DATA_DIR [OUT_DIR]]
#   1. train-joint, 2 epochs, AMP + channels_last + auto workers (resnet18, 224x224)
#   2. predict --tta on the eval images
#   3. bench/train_step.py: real loader vs batches already on the device (target: >= 0.90 of the model-only rate)
#   4. bench/loader.py at 224x224 with 8 workers
#   5. with 2+ GPUs: the same training under torchrun on 2 GPUs (DDP, NCCL)
# Prints a table and writes OUT_DIR/gpu.json. Without CUDA it says so and exits 0.
# DATA_DIR defaults to ../shared/data/maskproxy-dev, else a generated demo set.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-$here/../.venv/bin/python}
[[ -x $python ]] || python=python3
DATA=${1:-$here/../../shared/data/maskproxy-dev}
OUT=${2:-$here/results/gpu}
BACKBONE=${BACKBONE:-resnet18}

gpus=$("$python" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
if [[ $gpus == 0 ]]; then
  echo "bench/gpu.sh: no CUDA device visible to torch; nothing to measure here (run it on a GPU machine)"
  exit 0
fi
mkdir -p "$OUT"
if [[ ! -d $DATA/train/images ]]; then
  DATA=$OUT/demo
  [[ -d $DATA ]] || "$python" -m maskcls make-demo "$DATA" --train-persons 300 --eval-persons 60
fi
timed() {  # timed NAME CMD...: runs CMD, records its wall seconds in $OUT/NAME.s
  local name=$1; shift
  local t0; t0=$(date +%s.%N)
  "$@" 2>&1 | tee "$OUT/$name.log"
  "$python" -c "print($(date +%s.%N) - $t0)" > "$OUT/$name.s"
}
rm -rf "$OUT/runs"
TRAIN=(train-joint --data "$DATA" --backbone "$BACKBONE" --img-size 224 224 --epochs 2 --batch-size 64 --amp
       --out "$OUT/runs" --name joint)
timed train "$python" -m maskcls "${TRAIN[@]}"
timed predict "$python" -m maskcls predict "$OUT/runs/joint" --data "$DATA" --out "$OUT/pred.csv" --tta
timed train_step "$python" "$here/train_step.py" --data "$DATA" --backbone "$BACKBONE" --size 224 224 --batch-size 64 \
  --steps 30 --device cuda --json "$OUT/train_step.json"
timed loader "$python" "$here/loader.py" --data "$DATA" --size 224 224 --workers 8 --images 3000 --json "$OUT/loader.json"
if (( gpus >= 2 )); then
  TRAIN[${#TRAIN[@]}-1]=joint-ddp
  timed ddp "$python" -m torch.distributed.run --standalone --nproc_per_node 2 -m maskcls "${TRAIN[@]}"
fi
"$python" - "$OUT" <<'PY'
import json, sys, torch
from pathlib import Path
out = Path(sys.argv[1])
secs = {p.stem: float(p.read_text()) for p in out.glob("*.s")}
res = {"device": torch.cuda.get_device_name(0), "gpus": torch.cuda.device_count(), "torch": torch.__version__,
       "seconds": secs}
for name in ("train_step", "loader"):
    f = out / f"{name}.json"
    res[name] = json.loads(f.read_text()) if f.exists() else None
for run in ("joint", "joint-ddp"):
    s = out / "runs" / run / "summary.json"
    res[f"{run}_score"] = json.loads(s.read_text())["mean_score"] if s.exists() else None
(out / "gpu.json").write_text(json.dumps(res, indent=2) + "\n")
print(f"\n{'what':<28}{'value':>14}")
print(f"{'device':<28}{res['device']:>14.14}")
for k, v in secs.items():
    print(f"{k + ' seconds':<28}{v:>14.1f}")
ts = res["train_step"] or {}
for k, v in ts.items():
    if isinstance(v, int | float):
        print(f"{'train_step ' + k:<28}{v:>14.3f}")
print(f"wrote {out / 'gpu.json'}")
PY

#!/usr/bin/env bash
# Chain every stage, each a plain `maskcls` call you can copy:
#   crop -> train mask/gender/age over K folds (+ a final fit on every person) -> predict each -> ensemble -> submit
#
#   scripts/pipeline.sh DATA_DIR OUT_DIR [extra flags for every train command]
#
# Settings (environment variables, defaults in brackets):
#   BACKBONE [tv/mobilenet_v2]  PRETRAINED [1]  IMG_SIZE ["128 96"]  EPOCHS [12]  BATCH_SIZE [32]  LR [0.001]
#            (the measured default recipe: torchvision's ImageNet MobileNetV2, fine-tuned; its weights install
#             with maskcls, so PRETRAINED=1 works offline; PRETRAINED=0 trains from scratch)
#   FOLDS [5]              TRAIN_FOLDS ["all", or a list like "0 1"]              SEED [42]
#   CROP [1]  DETECTORS [mtcnn,haar,center]  CROP_SIZE ["256 192"]   TTA [1]   JOINT [0: three models; 1: one joint model]
#   ANSWERS [DATA_DIR/../eval_answers.csv or DATA_DIR/eval_answers.csv when present]: prints the local macro-F1
#   EXTERNAL [none]: face photos of known age and gender (UTKFace-named folder or CSV) for the age, gender
#                    and joint models (`--external`; the largest gain measured, see README "Quality")
#   FINAL [1]: also train each task on every person (`--fold none`, same epochs) and add it to the ensemble;
#              the final fit beat a fold model by six seed spreads in the quality table (README "Quality")
# The submission lands in OUT_DIR/submissions/; the local score, if any, in OUT_DIR/score.json.
set -euo pipefail

DATA=${1:?usage: scripts/pipeline.sh DATA_DIR OUT_DIR [train flags...]}
OUT=${2:?usage: scripts/pipeline.sh DATA_DIR OUT_DIR [train flags...]}
shift 2
EXTRA=("$@")
MASKCLS=${MASKCLS:-maskcls}
BACKBONE=${BACKBONE:-tv/mobilenet_v2}
PRETRAINED=${PRETRAINED:-1}
IMG_SIZE=${IMG_SIZE:-"128 96"}
EPOCHS=${EPOCHS:-12}
BATCH_SIZE=${BATCH_SIZE:-32}
LR=${LR:-0.001}
FOLDS=${FOLDS:-5}
TRAIN_FOLDS=${TRAIN_FOLDS:-all}
SEED=${SEED:-42}
CROP=${CROP:-1}
DETECTORS=${DETECTORS:-mtcnn,haar,center}
CROP_SIZE=${CROP_SIZE:-"256 192"}
TTA=${TTA:-1}
JOINT=${JOINT:-0}
EXTERNAL=${EXTERNAL:-}
FINAL=${FINAL:-1}
if [[ -z "${ANSWERS:-}" ]]; then
  for f in "$DATA/eval_answers.csv" "$DATA/../eval_answers.csv"; do [[ -f $f ]] && ANSWERS=$f && break; done
fi

mkdir -p "$OUT/preds" "$OUT/submissions"
set -x
if [[ $CROP == 1 ]]; then
  $MASKCLS crop --data "$DATA" --out "$OUT/crops" --detectors "$DETECTORS" --size "$CROP_SIZE"
  DATA_USED=$OUT/crops
else
  DATA_USED=$DATA
fi

if [[ $JOINT == 1 ]]; then TASKS=(joint); else TASKS=(mask gender age); fi
TTA_FLAG=(); [[ $TTA == 1 ]] && TTA_FLAG=(--tta)
PRETRAINED_FLAG=(--pretrained); [[ $PRETRAINED == 0 ]] && PRETRAINED_FLAG=(--no-pretrained)

for task in "${TASKS[@]}"; do
  fold_preds=()
  TASK_FLAGS=(); [[ -n $EXTERNAL && $task != mask ]] && TASK_FLAGS=(--external "$EXTERNAL")
  for fold in $([[ $TRAIN_FOLDS == all ]] && seq 0 $((FOLDS - 1)) || echo "$TRAIN_FOLDS") $([[ $FINAL == 1 ]] && echo none); do
    rm -rf "$OUT/runs/$task-fold$fold"  # the pipeline owns OUT_DIR: a re-run replaces its runs
    $MASKCLS "train-$task" --data "$DATA_USED" --backbone "$BACKBONE" "${PRETRAINED_FLAG[@]}" --img-size "$IMG_SIZE" --epochs "$EPOCHS" \
      --batch-size "$BATCH_SIZE" --lr "$LR" --folds "$FOLDS" --fold "$fold" --seed "$SEED" \
      --out "$OUT/runs" --name "$task-fold$fold" "${TASK_FLAGS[@]}" "${EXTRA[@]}"
    $MASKCLS predict "$OUT/runs/$task-fold$fold" --data "$DATA_USED" --out "$OUT/preds/$task-fold$fold.csv" "${TTA_FLAG[@]}"
    fold_preds+=("$OUT/preds/$task-fold$fold.csv")
  done
  $MASKCLS ensemble "${fold_preds[@]}" --out "$OUT/preds/$task.csv"
done

SUBMIT=(--data "$DATA_USED" --out "$OUT/submissions")
if [[ $JOINT == 1 ]]; then SUBMIT+=(--joint "$OUT/preds/joint.csv")
else SUBMIT+=(--mask "$OUT/preds/mask.csv" --gender "$OUT/preds/gender.csv" --age "$OUT/preds/age.csv"); fi
[[ -n "${ANSWERS:-}" ]] && SUBMIT+=(--answers "$ANSWERS" --score-json "$OUT/score.json")
$MASKCLS submit "${SUBMIT[@]}"

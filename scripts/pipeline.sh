#!/usr/bin/env bash
# Chain every stage, each a plain `maskcls` call you can copy:
#   crop -> train mask/gender/age over K folds (+ a final fit on every person), per backbone -> predict each
#   -> ensemble (soft vote of every fold, final fit and backbone) -> submit
#
#   scripts/pipeline.sh DATA_DIR OUT_DIR [extra flags for every train command]
#
# Settings (environment variables). A training setting left unset is not passed: args.json and
# configs/<task>.json decide it (`maskcls config show --task age` prints them), as for any train command.
#   BACKBONE, PRETRAINED (1/0), IMG_SIZE ("128 96"), EPOCHS, BATCH_SIZE, LR, SEED, FOLDS: their flags when set
#   BACKBONES ["$BACKBONE"]: several, e.g. "tv/mobilenet_v2 tv/resnet18": each trains its own runs and all
#                            of them are soft-voted together (an ensemble across families)
#   TRAIN_FOLDS [all: every fold in one run; or a list like "0 1": one run each]
#   CROP [1]  DETECTORS [crop's default chain]  CROP_SIZE [crop's default]   TTA [1]   JOINT [0: three models; 1: one]
#   ANSWERS [DATA_DIR/../eval_answers.csv or DATA_DIR/eval_answers.csv when present]: prints the local macro-F1
#   EXTERNAL [none]: face photos of known age and gender (UTKFace-named folder or CSV) for the age, gender
#                    and joint models (`--external`; the largest gain measured, see README "Quality")
#   FINAL [1]: also train each task on every person (`--fold none`, same epochs) and add it to the ensemble
# The submission lands in OUT_DIR/submissions/; the local score, if any, in OUT_DIR/score.json.
set -euo pipefail

DATA=${1:?usage: scripts/pipeline.sh DATA_DIR OUT_DIR [train flags...]}
OUT=${2:?usage: scripts/pipeline.sh DATA_DIR OUT_DIR [train flags...]}
shift 2
EXTRA=("$@")
MASKCLS=${MASKCLS:-maskcls}
TRAIN_FOLDS=${TRAIN_FOLDS:-all}
CROP=${CROP:-1}
TTA=${TTA:-1}
JOINT=${JOINT:-0}
EXTERNAL=${EXTERNAL:-}
FINAL=${FINAL:-1}
read -r -a BACKBONE_LIST <<< "${BACKBONES:-${BACKBONE:-}}"
[[ ${#BACKBONE_LIST[@]} == 0 ]] && BACKBONE_LIST=("")  # one run set, on args.json's backbone
if [[ -z "${ANSWERS:-}" ]]; then
  for f in "$DATA/eval_answers.csv" "$DATA/../eval_answers.csv"; do [[ -f $f ]] && ANSWERS=$f && break; done
fi

TRAIN=()  # only the settings this caller set
[[ -n ${PRETRAINED+x} ]] && { [[ $PRETRAINED == 0 ]] && TRAIN+=(--no-pretrained) || TRAIN+=(--pretrained); }
[[ -n ${IMG_SIZE+x} ]] && TRAIN+=(--img-size "$IMG_SIZE")
[[ -n ${EPOCHS+x} ]] && TRAIN+=(--epochs "$EPOCHS")
[[ -n ${BATCH_SIZE+x} ]] && TRAIN+=(--batch-size "$BATCH_SIZE")
[[ -n ${LR+x} ]] && TRAIN+=(--lr "$LR")
[[ -n ${SEED+x} ]] && TRAIN+=(--seed "$SEED")
[[ -n ${FOLDS+x} ]] && TRAIN+=(--folds "$FOLDS")
CROP_FLAGS=()
[[ -n ${DETECTORS+x} ]] && CROP_FLAGS+=(--detectors "$DETECTORS")
[[ -n ${CROP_SIZE+x} ]] && CROP_FLAGS+=(--size "$CROP_SIZE")

mkdir -p "$OUT/preds" "$OUT/submissions"
set -x
if [[ $CROP == 1 ]]; then
  $MASKCLS crop --data "$DATA" --out "$OUT/crops" "${CROP_FLAGS[@]}"
  DATA_USED=$OUT/crops
else
  DATA_USED=$DATA
fi

if [[ $JOINT == 1 ]]; then TASKS=(joint); else TASKS=(mask gender age); fi
TTA_FLAG=(); [[ $TTA == 1 ]] && TTA_FLAG=(--tta)
if [[ $TRAIN_FOLDS == all ]]; then FOLD_RUNS=(all); else read -r -a FOLD_RUNS <<< "$TRAIN_FOLDS"; fi
[[ $FINAL == 1 ]] && FOLD_RUNS+=(none)

for task in "${TASKS[@]}"; do
  preds=()
  TASK_FLAGS=(); [[ -n $EXTERNAL && $task != mask ]] && TASK_FLAGS=(--external "$EXTERNAL")
  for backbone in "${BACKBONE_LIST[@]}"; do
    BACKBONE_FLAG=(); TAG=""
    if [[ -n $backbone ]]; then BACKBONE_FLAG=(--backbone "$backbone"); fi
    if [[ ${#BACKBONE_LIST[@]} -gt 1 ]]; then TAG="-${backbone//\//-}"; fi
    for fold in "${FOLD_RUNS[@]}"; do
      name="$task$TAG-fold$fold"
      rm -rf "${OUT:?}/runs/$name"  # the pipeline owns OUT_DIR: a re-run replaces its runs
      $MASKCLS "train-$task" --data "$DATA_USED" "${BACKBONE_FLAG[@]}" "${TRAIN[@]}" --fold "$fold" \
        --out "$OUT/runs" --name "$name" "${TASK_FLAGS[@]}" "${EXTRA[@]}"
      $MASKCLS predict "$OUT/runs/$name" --data "$DATA_USED" --out "$OUT/preds/$name.csv" "${TTA_FLAG[@]}"
      preds+=("$OUT/preds/$name.csv")
    done
  done
  $MASKCLS ensemble "${preds[@]}" --out "$OUT/preds/$task.csv"
done

SUBMIT=(--data "$DATA_USED" --out "$OUT/submissions")
if [[ $JOINT == 1 ]]; then SUBMIT+=(--joint "$OUT/preds/joint.csv")
else SUBMIT+=(--mask "$OUT/preds/mask.csv" --gender "$OUT/preds/gender.csv" --age "$OUT/preds/age.csv"); fi
[[ -n "${ANSWERS:-}" ]] && SUBMIT+=(--answers "$ANSWERS" --score-json "$OUT/score.json")
$MASKCLS submit "${SUBMIT[@]}"

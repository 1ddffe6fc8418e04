"""Quality on real faces: the full pipeline under a fixed CPU budget, ablations, seed spread.

    bench/quality.sh --fold0 [DATA_DIR [OUT_DIR]] [--ablations] [--seeds 3] [--epochs 12] [--ablation-epochs 6]

The earlier protocol: one fold's model scored on the 200 dev eval persons. Its rows sit inside their own noise
(README, "Quality"); bench/quality.py, the paired out-of-fold protocol over all 800 persons, replaced it.

Every stage is a plain `maskcls` call, printed before it runs. Works for any DATA_DIR in the
contest layout; scores are printed only when DATA_DIR/eval_answers.csv (ImageID,ans) exists.
The recipe fine-tunes torchvision's ImageNet MobileNetV2 (the weights package's file, offline);
`--recipe scratch` is the earlier from-scratch ResNet-18 recipe, kept as the reference its rows are
(bench/results/quality/). The `anchor` row runs ../shared/anchors/plain_finetune.py, the plain
pretrained notebook, on the same crops: the floor to clear.

Default run (target: under 30 minutes on 2 CPU cores): crop (haar,center) -> train-joint on fold 0
-> predict --tta -> submit --answers. With --ablations, each variant below trains once at the
smaller ablation budget (fold 0, --ablation-epochs), and the default variant also with
--seeds seeds, so differences can be told from noise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from quality import run  # bench/quality.py: one command, its output appended to the log
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
console = Console()

# The recipes under test, spelled out so a later change of args.json cannot silently change this
# benchmark: "pretrained" is args.json + configs/joint.json (see README, "Quality"); "scratch" the
# from-scratch default every row before the pretrained issue was measured with.
RECIPES = {
    "pretrained": [
        "--backbone",
        "tv/mobilenet_v2",
        "--pretrained",
        "--img-size",
        "128 96",
        "--batch-size",
        "32",
        "--lr",
        "0.001",
    ],  # fmt: skip
    "scratch": [
        "--backbone",
        "resnet18",
        "--no-pretrained",
        "--img-size",
        "128 96",
        "--batch-size",
        "32",
        "--lr",
        "0.002",
    ],  # fmt: skip
}
RECIPE = RECIPES["pretrained"]
ANCHOR = ROOT.parent / "shared" / "anchors" / "plain_finetune.py"


@dataclass
class Variant:
    slug: str
    name: str
    flags: list[str] = field(default_factory=list)  # train flags added to the recipe
    crop: bool = True
    tasks: str = "joint"  # or "separate": three single-task models
    tta: bool = True
    reuse: str | None = None  # predict with another variant's models instead of training
    tune: bool = False  # maskcls tune-thresholds on the run's out-of-fold rows, then predict with them
    fold: str = "0"  # "none": the final fit on every person (no validation)
    crop_flags: list[str] = field(default_factory=list)  # another crop box (its own crops folder)
    exclude_top: float = 0.0  # audit a --fold all run, then train without the top share of suspect persons
    recipe: str | None = None  # another base recipe (RECIPES) than the benchmark's
    epochs: int | None = None  # another budget than --ablation-epochs
    anchor: bool = False  # the plain pretrained notebook (ANCHOR), not maskcls


ABLATIONS = [
    Variant("default", "default (joint, crop, neighbor age, oversample 0.5, TTA)"),
    # the pretrained issue (19): the floor, the old default, and the pretrained recipe's own knobs
    Variant("anchor", "plain pretrained notebook (shared/anchors, same crops and epochs)", anchor=True),
    Variant("scratch", "from scratch: the previous default (resnet18, lr 0.002)", recipe="scratch"),
    Variant("lr3e-3", "lr 0.003", ["--lr", "0.003"]),
    Variant("lr3e-4", "lr 0.0003", ["--lr", "0.0003"]),
    Variant("size192", "input 192x144 (2.25x the pixels)", ["--img-size", "192 144"]),
    Variant("epochs8", "8 epochs (twice the budget)", epochs=8),
    Variant("no-crop", "no crop", crop=False),
    Variant("no-neighbor", "no neighbor-age smoothing (uniform smoothing)", ["--loss", "smooth"]),
    Variant("no-oversample", "no oversampling", ["--oversample", "0"]),
    Variant("separate", "separate task models (3x the compute)", tasks="separate"),
    Variant("age58", "age threshold 58 for the training labels", ["--age-upper", "58"]),
    Variant("no-tta", "no TTA", tta=False, reuse="default"),
    Variant("no-decay-norm-bias", "no weight decay on biases and norm layers", ["--set", "decay_norm_bias=false"]),
    # the age options (issue 10)
    Variant("ordinal", "age head ordinal (CORN)", ["--age-head", "ordinal"]),
    Variant("regression", "age head regression (Huber)", ["--age-head", "regression"]),
    Variant("tuned", "default + tuned per-class biases (OOF)", reuse="default", tune=True),
    Variant("ordinal-tuned", "ordinal + tuned cut-offs and biases (OOF)", reuse="ordinal", tune=True),
    Variant("drop-ages", "drop training ages 27-29, 57-59", ["--drop-ages", "27-29,57-59"]),
    Variant("external", "external faces (utkface-extra, 2,823)", ["--external", "{external}"]),
    Variant("gated", "gender-gated age head", ["--age-gate"]),
    # the winners' recipe (issue 15)
    Variant("halves", "half-image CutMix (left/right, any partner)", ["--cutmix", "1", "--cutmix-mode", "halves"]),
    Variant(
        "halves-rare",
        "half-image CutMix, partner from the rarest age group",
        ["--cutmix", "1", "--cutmix-mode", "halves", "--cutmix-partner", "rare"],
    ),  # fmt: skip
    Variant("ema", "EMA of the weights (decay 0.999, warmed up)", ["--ema", "0.999"]),
    Variant("dropout", "dropout 0.2 before the heads (--head-dropout 0.2)", ["--head-dropout", "0.2"]),
    Variant("final-fit", "final fit on every person (--fold none, same epochs)", fold="none"),
    Variant("audit-exclude", "audit (5 folds) then --exclude the top 5% suspect persons", exclude_top=0.05),
    Variant(
        "crop-low",
        "crop box lower and larger (margin 0.3, down-shift 0.25)",
        crop_flags=["--margin", "0.3", "--down-shift", "0.25"],
    ),  # fmt: skip
    Variant("mask-styles", "mask restyling augmentation (--augment masks)", ["--augment", "masks"]),
    # the face detector (issue 20): the same crop box, found by MTCNN first; then aligned by its landmarks
    Variant("crop-mtcnn", "crop: MTCNN first (mtcnn,haar,center)", crop_flags=["--detectors", "mtcnn,haar,center"]),
    Variant(
        "crop-align",
        "crop: MTCNN first, eyes levelled (--align)",
        crop_flags=["--detectors", "mtcnn,haar,center", "--align"],
    ),  # fmt: skip
]
AUDIT_EPOCHS = 4  # the audit run's budget per fold (5 folds): enough to rank, a third of a full run


def maskcls(*args) -> list[str]:
    return [sys.executable, "-m", "maskcls", *map(str, args)]


def audit_exclude(data: Path, out: Path, top: float, seed: int, log: Path) -> Path:
    """Train every fold, audit, and write the top `top` share of suspect persons as an --exclude file."""
    import pandas as pd

    runs = out / "audit-runs"
    if not (runs / "joint" / "oof.csv").is_file():
        train = maskcls("train-joint", "--data", data, *RECIPE, "--epochs", AUDIT_EPOCHS, "--seed", seed)
        run([*train, "--fold", "all", "--out", runs, "--name", "joint", "--cache-dir", out.parent / "cache"], log)
    run(maskcls("audit", runs / "joint", "--out", out / "audit"), log)
    sus = pd.read_csv(out / "audit" / "suspects.csv", dtype={"person": str, "stem": str}, keep_default_na=False)
    persons = sus[sus["unit"] == "person"].drop_duplicates("person")
    chosen = persons.head(round(top * len(persons)))
    path = out / "exclude.csv"
    chosen[["person", "stem", "head", "given", "predicted", "loss"]].to_csv(path, index=False)
    return path


def mask_by_style(pred: Path, answers: Path, faces: Path) -> dict:
    """Mask macro-F1 per mask style: the faces of that style (worn, below the nose, on the chin) with
    the bare faces (so all three states are present), as faces.csv names them."""
    import pandas as pd
    from sklearn.metrics import f1_score

    p = pd.read_csv(pred).merge(pd.read_csv(answers), on="ImageID").merge(pd.read_csv(faces), on="ImageID")
    p["pred"] = p[["mask_0", "mask_1", "mask_2"]].to_numpy().argmax(1)
    p["true"] = p["ans"] // 6
    bare = p[p["style"] == "none"]
    out = {}
    for style, g in p[p["style"] != "none"].groupby("style"):
        both = pd.concat([g, bare])
        out[style] = round(float(f1_score(both["true"], both["pred"], average="macro")), 4)
    return out


def experiment(name: str, data: Path, out: Path, flags: list[str], tasks: str, tta: bool, epochs: int, seed: int,
               answers: Path | None, log: Path, reuse_from: Path | None = None,
               tune: bool = False, fold: str = "0", faces: Path | None = None,
               recipe: list[str] = RECIPE) -> dict:  # fmt: skip
    """Train (or reuse) the models of one variant, predict, submit; returns the scores and seconds."""
    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    cache = out.parent / "cache"  # shared by the variants that train on the same images
    preds = {}
    for task in ["mask", "gender", "age"] if tasks == "separate" else ["joint"]:
        run_dir = (reuse_from or out) / "runs" / task
        if reuse_from is None:
            train = maskcls(f"train-{task}", "--data", data, *recipe, *flags, "--epochs", epochs, "--seed", seed)
            run([*train, "--fold", fold, "--out", str(out / "runs"), "--name", task, "--cache-dir", str(cache)], log)
        preds[task] = out / f"{task}.csv"
        if tune:
            run(maskcls("tune-thresholds", run_dir), log)
        predict = maskcls("predict", run_dir, "--data", data, "--out", preds[task], "--tuned" if tune else "--no-tuned")
        run([*predict, *(["--tta"] if tta else [])], log)
    cmd = maskcls("submit", "--data", data, "--out", out / "submissions")
    for task, p in preds.items():
        cmd += [f"--{task}", str(p)]
    if answers is not None:
        cmd += ["--answers", str(answers), "--score-json", str(out / "score.json")]
    run(cmd, log)
    result = {"name": name, "seconds": round(time.time() - t0), "seed": seed, "epochs": epochs}
    val = json.loads((run_dir / ("fold-none" if fold == "none" else "fold0") / "metrics.json").read_text())["metrics"]
    if "mae" in val.get("age", {}):  # an age head that predicts years: its validation MAE
        result["val_age_mae"] = round(val["age"]["mae"], 2)
    if answers is not None:
        result.update(json.loads((out / "score.json").read_text()))
    mask_pred = preds.get("joint", preds.get("mask"))
    if answers is not None and faces is not None and faces.is_file() and mask_pred is not None:
        result["mask_by_style"] = mask_by_style(mask_pred, answers, faces)
    console.print(
        f"{name}: " + (f"macro-F1 {result['class']['f1']:.4f}" if answers else "done") + f" ({result['seconds']} s)"
    )
    return result


def anchor(name: str, crops: Path, answers: Path | None, epochs: int, seed: int, log: Path) -> dict:
    """The plain pretrained notebook on the same crops (it reads eval_answers.csv beside train/)."""
    import re

    from maskcls import weights

    if answers is None or not ANCHOR.is_file():
        raise SystemExit(f"the anchor row needs {ANCHOR} and eval_answers.csv")
    shutil.copy(answers, crops / "eval_answers.csv")
    found = weights.find_local("tv/mobilenet_v2")
    t0 = time.time()
    cmd = [sys.executable, ANCHOR, crops, found.path, "--epochs", epochs, "--size", 128, 96, "--seed", seed]
    run(cmd, log)
    last = [ln for ln in log.read_text().splitlines() if ln.startswith("RESULT")][-1]
    num = r"([0-9.]+)"
    m = re.search(rf"macro-F1 {num} acc {num} \| mask {num} gender {num} age {num}", last)
    f1, acc, mask, gender, age = map(float, m.groups())
    console.print(f"{name}: macro-F1 {f1:.4f} ({round(time.time() - t0)} s)")
    heads = {"mask": {"f1": mask}, "gender": {"f1": gender}, "age": {"f1": age}}
    return {"name": name, "seconds": round(time.time() - t0), "seed": seed, "epochs": epochs,
            "class": {"f1": f1, "acc": acc}, **heads}  # fmt: skip


def slug_of(name: str) -> str:
    """The slug of a row written before rows carried one (matched by its name)."""
    return next((v.slug for v in ABLATIONS if v.name == name), name)


def row(table: Table, r: dict) -> None:
    if "class" in r:
        table.add_row(r["name"], f"{r['class']['f1']:.4f}", f"{r['class']['acc']:.4f}",
                      *[f"{r[t]['f1']:.3f}" for t in ("mask", "gender", "age")], str(r.get("val_age_mae", "")),
                      str(r["seconds"]))  # fmt: skip
    else:
        table.add_row(r["name"], "-", "-", "-", "-", "-", "", str(r["seconds"]))


def new_table(title: str) -> Table:
    t = Table(title=title)
    for c in ("variant", "macro-F1", "accuracy", "mask F1", "gender F1", "age F1", "val age MAE", "seconds"):
        t.add_column(c, justify="left" if c == "variant" else "right")
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", type=Path, default=ROOT.parent / "shared" / "data" / "maskproxy-dev")
    ap.add_argument(
        "out",
        nargs="?",
        type=Path,
        default=None,
        help="default bench/results/quality-pretrained (--recipe scratch: bench/results/quality)",
    )
    ap.add_argument("--ablations", action="store_true", help="also run the ablation table")
    ap.add_argument("--only-ablations", action="store_true", help="skip the default full-budget run")
    ap.add_argument("--seeds", type=int, default=3, help="seeds of the default variant in the ablation table")
    ap.add_argument("--epochs", type=int, default=12, help="default run budget (about 50 s an epoch on 2 cores)")
    ap.add_argument("--ablation-epochs", type=int, default=4, help="the plain notebook's budget")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="pretrained", help="the base recipe of every row")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--external", type=Path, default=ROOT.parent / "shared" / "data" / "utkface-extra" / "images",
                    help="UTKFace-named faces for the external-faces row")  # fmt: skip
    ap.add_argument("--variants", help="comma-separated ablation slugs to (re)run; their rows replace those in "
                    "OUT/quality.json, the others are kept (implies --ablations --only-ablations)")  # fmt: skip
    args = ap.parse_args()
    chosen = ABLATIONS
    if args.variants:
        slugs = args.variants.split(",")
        unknown = sorted(set(slugs) - {v.slug for v in ABLATIONS})
        if unknown:
            ap.error(f"unknown variant(s) {unknown}; known: {', '.join(v.slug for v in ABLATIONS)}")
        chosen = [next(v for v in ABLATIONS if v.slug == slug) for slug in dict.fromkeys(slugs)]  # in the order given
        args.ablations = args.only_ablations = True
    recipe = RECIPES[args.recipe]
    default_out = "quality-pretrained" if args.recipe == "pretrained" else "quality"
    data, out = args.data.resolve(), (args.out or ROOT / "bench" / "results" / default_out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "quality.log"
    answers = data / "eval_answers.csv"
    answers = answers if answers.is_file() else None
    t0 = time.time()
    crops = out / "crops"
    # Haar first, though `crop` now defaults to MTCNN first: every row measured so far stands on these crops,
    # so they stay comparable; the crop-mtcnn row is the default chain's (README, "Quality").
    run(maskcls("crop", "--data", data, "--out", crops, "--detectors", "haar,center", "--size", "256 192"), log)
    keep = args.variants and (out / "quality.json").is_file()
    previous = json.loads((out / "quality.json").read_text()) if keep else {}
    report: dict = {**previous, "data": str(data), "recipe": recipe, "crop_seconds": round(time.time() - t0)}

    if not args.only_ablations:
        main_run = experiment("default recipe", crops, out / "default", [], "joint", True, args.epochs, args.seed,
                              answers, log, recipe=recipe)  # fmt: skip
        main_run["seconds_with_crop"] = main_run["seconds"] + report["crop_seconds"]
        report["default"] = main_run
        t = new_table(f"default recipe, {args.epochs} epochs, fold 0 (crop {report['crop_seconds']} s)")
        row(t, main_run)
        console.print(t)

    if args.ablations:
        results = []
        for v in chosen:
            reuse = out / "ablations" / v.reuse if v.reuse else None
            src = crops if v.crop else data
            if v.crop_flags:  # its own crop box: its own crops folder
                src = out / f"crops-{v.slug}"
                run(maskcls("crop", "--data", data, "--out", src, "--detectors", "haar,center", "--size", "256 192",
                            *v.crop_flags), log)  # fmt: skip
            if "{external}" in v.flags and not args.external.is_dir():
                console.print(f"[yellow]skipped {v.slug}: no external faces at {args.external}[/]")
                continue
            flags = [f.replace("{external}", str(args.external)) for f in v.flags]
            if v.exclude_top:
                ablation = out / "ablations" / v.slug
                ablation.mkdir(parents=True, exist_ok=True)
                flags += ["--exclude", str(audit_exclude(src, ablation, v.exclude_top, args.seed, log))]
            epochs = v.epochs or args.ablation_epochs
            if v.anchor:
                results.append(anchor(v.name, src, answers, epochs, args.seed, log))
            else:
                base = RECIPES[v.recipe] if v.recipe else recipe
                results.append(experiment(v.name, src, out / "ablations" / v.slug, flags, v.tasks, v.tta, epochs,
                                          args.seed, answers, log, reuse_from=reuse, tune=v.tune, fold=v.fold,
                                          faces=data / "faces.csv", recipe=base))  # fmt: skip
            results[-1]["slug"] = v.slug
            (out / "quality.partial.json").write_text(
                json.dumps(results, indent=2) + "\n"
            )  # a cut-off run keeps its rows
            if v.slug == "default" and args.seeds > 1:  # --seeds 1 keeps the seed rows already measured
                report["seeds"] = [results[-1]] + [
                    experiment(
                        f"default, seed {args.seed + k}",
                        crops,
                        out / "ablations" / f"default-seed{k}",
                        v.flags,
                        v.tasks,
                        v.tta,
                        args.ablation_epochs,
                        args.seed + k,
                        answers,
                        log,
                        recipe=recipe,
                    )  # fmt: skip
                    for k in range(1, args.seeds)
                ]
        fresh = {r["slug"] for r in results}
        order = [v.slug for v in ABLATIONS]
        kept = [r for r in previous.get("ablations", []) if r.get("slug", slug_of(r["name"])) not in fresh]
        report["ablations"] = sorted([*kept, *results], key=lambda r: order.index(r.get("slug", slug_of(r["name"]))))
        results = report["ablations"]
        for r in results:  # rows measured before the per-style figures existed, whose predictions are here
            pred = out / "ablations" / r.get("slug", slug_of(r["name"])) / "joint.csv"
            if "mask_by_style" not in r and answers is not None and (data / "faces.csv").is_file() and pred.is_file():
                r["mask_by_style"] = mask_by_style(pred, answers, data / "faces.csv")
        t = new_table(f"ablations: {args.ablation_epochs} epochs each, fold 0, seed {args.seed}")
        for r in results:
            row(t, r)
        console.print(t)
        styled = [r for r in results if "mask_by_style" in r]
        if styled:
            styles = sorted(styled[0]["mask_by_style"])
            t = Table(title="mask macro-F1 by mask style (that style's faces + the bare faces)")
            for c in ("variant", *styles, "worst"):
                t.add_column(c, justify="left" if c == "variant" else "right")
            for r in styled:
                f = r["mask_by_style"]
                t.add_row(r["name"], *[f"{f[k]:.3f}" for k in styles], f"{min(f.values()):.3f}")
            console.print(t)
        if answers is not None and "seeds" in report:
            import numpy as np

            f1 = np.array([s["class"]["f1"] for s in report["seeds"]])
            report["seed_spread"] = {"mean": float(f1.mean()), "std": float(f1.std(ddof=1)) if len(f1) > 1 else 0.0,
                                     "min": float(f1.min()), "max": float(f1.max()), "n": len(f1)}  # fmt: skip
            s = report["seed_spread"]
            console.print(f"default variant over {s['n']} seeds: macro-F1 {s['mean']:.4f} ± {s['std']:.4f} "
                          f"(min {s['min']:.4f}, max {s['max']:.4f})")  # fmt: skip
    report["total_seconds"] = round(time.time() - t0)
    (out / "quality.json").write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {out / 'quality.json'} ({report['total_seconds']} s in all)")


if __name__ == "__main__":
    main()

"""Quality with power: out-of-fold predictions over every labelled dev person, each row paired against the base.

    bench/quality.sh [--rows base,anchor,epochs12] [--seed 42] [--folds 3] [--boot 2000] [DATA [OUT]]

One row = one recipe trained K times (`--fold all` on K person folds fixed once for every row and seed), each
fold's last epoch predicting its held-out persons (hflip TTA, as `predict --tta`): 800 persons, 5,600 photos of
maskproxy-dev (train/ and eval/ with its answer key) scored once each, by models that never saw them and never
chose an epoch on them. Every row is compared with the base recipe **on the same photos**:

  * Δ macro-F1 (the leaderboard metric over the 18 classes) and its 95 % interval from a person-level paired
    bootstrap (persons resampled with their seven photos, both rows scored on the same resample);
  * Δ log-loss per head (mask, gender, age): a smooth companion that sees effects the F1 cannot.

Training-seed noise is measured, not assumed: `--rows base --seed 43` and `--seed 44` add the base recipe at
other seeds with the folds fixed, and the report pairs them with seed 42 like any row (what "no effect" reads).
A row's Δ is called an effect only when its interval clears zero *and* |Δ| is above the largest seed-vs-seed Δ.

The `anchor` row runs ../shared/anchors/plain_finetune.py (the plain pretrained notebook) once per fold on the
same crops and folds, unmodified; its per-photo answers are read from the arrays it passes to scikit-learn's
f1_score (hard answers only: no log-loss for it). Rows and their CPU seconds accumulate in OUT/quality.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
ANCHOR = SHARED / "anchors" / "plain_finetune.py"
console = Console(width=None if sys.stdout.isatty() else 200)  # a log gets the whole table

# The base recipe, spelled out so that editing args.json cannot silently move the reference every row is
# paired with. It is args.json + configs/joint.json at the notebook's budget (4 epochs, 128x96).
BASE = ["--backbone", "tv/mobilenet_v2", "--pretrained", "--img-size", "128 96", "--batch-size", "32",
        "--lr", "0.001", "--epochs", "4"]  # fmt: skip
STEMS = {0: ["mask1", "mask2", "mask3", "mask4", "mask5"], 1: ["incorrect_mask"], 2: ["normal"]}


@dataclass
class Row:
    slug: str
    name: str
    flags: list[str] = field(default_factory=list)  # train-joint flags after BASE (a later flag wins)
    anchor: bool = False


ROWS = {r.slug: r for r in [
    Row("base", "base: the default recipe at 4 epochs (joint, crop, oversample 0.5, smoothing 0.1)"),
    Row("anchor", "plain pretrained notebook (shared/anchors, 4 epochs, same crops and folds)", anchor=True),
    Row("epochs2", "2 epochs", ["--epochs", "2"]),
    Row("epochs8", "8 epochs", ["--epochs", "8"]),
    Row("epochs12", "12 epochs (the default before this benchmark)", ["--epochs", "12"]),
    Row("size160", "input 160x120 (1.56x the pixels)", ["--img-size", "160 120"]),
    Row("external", "external faces (utkface-extra, 2,823, age and gender only)", ["--external", "{external}"]),
    Row("no-oversample", "no oversampling", ["--oversample", "0"]),
    Row("ema", "EMA of the weights (0.999)", ["--ema", "0.999"]),
    Row("halves", "half-image CutMix", ["--cutmix", "1", "--cutmix-mode", "halves"]),
    Row("f1-loss", "F1 loss", ["--loss", "f1"]),
    Row("drop-ages", "drop training ages 27-29, 57-59", ["--drop-ages", "27-29,57-59"]),
    Row("age-weight2", "age loss weight 2", ["--set", 'loss_weights={"mask": 1, "gender": 1, "age": 2}']),
]}  # fmt: skip


def run(cmd: list, log: Path) -> float:
    """Run one command, its output appended to log; returns its wall seconds."""
    cmd = [str(c) for c in cmd]
    console.print(f"[dim]$ {shlex.join(cmd)}[/]")
    t0 = time.time()
    with open(log, "a") as f:
        f.write(f"$ {shlex.join(cmd)}\n")
        f.flush()
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)} -- see {log}")
    return time.time() - t0


def maskcls(*args) -> list:
    return [sys.executable, "-m", "maskcls", *args]


# ---------------------------------------------------------------------------------------------- the pool


def build_pool(crops: Path, answers: Path, pool: Path) -> None:
    """Every labelled person in the contest layout: train/ as cropped, eval/ persons from the answer key
    (mask1..5 / incorrect_mask / normal by their mask label; race unknown). Hard links, no copies."""
    if (pool / "train" / "images").is_dir():
        return
    tmp = pool.with_name(pool.name + ".tmp")
    images = tmp / "train" / "images"
    images.mkdir(parents=True)
    for person in sorted((crops / "train" / "images").iterdir()):
        if person.is_dir() and not person.name.startswith("."):
            (images / person.name).mkdir()
            for f in person.iterdir():
                os.link(f, images / person.name / f.name)
    key = pd.read_csv(answers, dtype={"person": str}).sort_values("ImageID")
    for person, g in key.groupby("person"):
        gender = "male" if g["gender"].iloc[0] == 0 else "female"
        folder = images / f"{person}_{gender}_Unknown_{int(g['age'].iloc[0])}"
        folder.mkdir()
        for mask, rows in g.groupby("mask"):
            for stem, image in zip(STEMS[int(mask)], rows["ImageID"], strict=True):
                os.link(crops / "eval" / "images" / image, folder / f"{stem}{Path(image).suffix}")
    os.replace(tmp, pool)


def build_folds(pool: Path, folds: int, path: Path) -> pd.DataFrame:
    """Person folds made once (StratifiedGroupKFold on the 18 classes, seed 0) and shared by every row and seed."""
    from maskcls.data import scan_train
    from maskcls.data.splits import assign_folds, save_folds

    if not path.is_file():
        save_folds(assign_folds(scan_train(pool).table, folds=folds, seed=0), path)
    return pd.read_csv(path, dtype={"person": str})


# ---------------------------------------------------------------------------------------------- the rows


def held_out_predictions(run_dir: Path, pool: Path, folds: pd.DataFrame) -> pd.DataFrame:
    """Every person's photos predicted (hflip TTA) by the last epoch of the fold model that held them out."""
    import torch
    from torch.utils.data import DataLoader

    from maskcls.data import scan_train
    from maskcls.data.dataset import FaceDataset
    from maskcls.engine.inference import infer
    from maskcls.engine.kinds import build_heads
    from maskcls.models import load_for_inference

    table = scan_train(pool).table.merge(folds, on="person")
    parts = []
    for k in sorted(table["fold"].unique()):
        rows = table[table["fold"] == k].reset_index(drop=True)
        model, ckpt = load_for_inference(run_dir / f"fold{k}" / "last.pt", torch.device("cpu"))
        cfg = ckpt["config"]
        loader = DataLoader(FaceDataset(rows["path"].tolist(), None, cfg["img_size"]), batch_size=64)
        probs = infer(model, loader, torch.device("cpu"), build_heads(cfg), tta=True)
        part = rows[["path", "person", "fold", "mask", "gender", "age", "class"]].copy()
        for head, p in probs.items():
            if head in ("mask", "gender", "age"):
                part[[f"{head}_{i}" for i in range(p.shape[1])]] = p
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def train_row(row: Row, seed: int, pool: Path, out: Path, folds_csv: Path, nfolds: int, external: Path,
              log: Path) -> float:  # fmt: skip
    flags = [f.replace("{external}", str(external)) for f in row.flags]
    cmd = maskcls("train-joint", "--data", pool, *BASE, *flags, "--seed", seed, "--folds", nfolds, "--fold", "all",
                  "--set", f"folds_file={folds_csv}", "--out", out / "runs", "--name", f"{row.slug}-s{seed}",
                  "--cache-dir", out / "cache")  # fmt: skip
    return run(cmd, log)


def anchor_row(seed: int, pool: Path, out: Path, folds: pd.DataFrame, log: Path) -> tuple[pd.DataFrame, float]:
    """The notebook once per fold: train/ = the other folds' persons, eval/ = this fold's photos (hard links)."""
    from maskcls import weights
    from maskcls.data import scan_train

    table = scan_train(pool).table.merge(folds, on="person")
    found = weights.find_local("tv/mobilenet_v2")
    seconds, parts = 0.0, []
    for k in sorted(table["fold"].unique()):
        work = out / "anchor" / f"fold{k}"
        if not (work / "answers.npy").is_file():
            build_anchor_fold(table, k, pool, work)
            spy = [sys.executable, ROOT / "bench" / "anchor_spy.py", work / "answers.npy", ANCHOR, work,
                   found.path, "--epochs", 4, "--size", 128, 96, "--seed", seed]  # fmt: skip
            seconds += run(spy, log)
        got = np.load(work / "answers.npy")
        held = table[table["fold"] == k].sort_values("path").reset_index(drop=True)
        if not (got[0] == held["class"].to_numpy()).all():
            raise SystemExit(f"{work}: the notebook's answer key is not this fold's labels")
        part = held[["path", "person", "fold", "mask", "gender", "age", "class"]].copy()
        part["pred_class"] = got[1]
        parts.append(part)
    return pd.concat(parts, ignore_index=True), seconds


def build_anchor_fold(table: pd.DataFrame, k: int, pool: Path, work: Path) -> None:
    images = pool / "train" / "images"
    (work / "train" / "images").mkdir(parents=True, exist_ok=True)
    (work / "eval" / "images").mkdir(parents=True, exist_ok=True)
    for person_dir in table.loc[table["fold"] != k, "path"].map(lambda p: Path(p).parent.name).unique():
        dst = work / "train" / "images" / person_dir
        if not dst.exists():
            dst.mkdir()
            for f in (images / person_dir).iterdir():
                os.link(f, dst / f.name)
    held = table[table["fold"] == k].sort_values("path").reset_index(drop=True)
    ids = [f"{i:05d}.jpg" for i in range(len(held))]  # in path order: the order answers.npy comes back in
    for image_id, path in zip(ids, held["path"], strict=True):
        dst = work / "eval" / "images" / image_id
        if not dst.exists():
            os.link(path, dst)
    pd.DataFrame({"ImageID": ids, "ans": 0}).to_csv(work / "eval" / "info.csv", index=False)
    pd.DataFrame({"ImageID": ids, "ans": held["class"]}).to_csv(work / "eval_answers.csv", index=False)


# ---------------------------------------------------------------------------------------------- the statistics


def predicted_class(t: pd.DataFrame) -> np.ndarray:
    if "pred_class" in t:
        return t["pred_class"].to_numpy()
    arg = {h: t[[c for c in t.columns if c.startswith(f"{h}_") and c[len(h) + 1 :].isdigit()]].to_numpy().argmax(1)
           for h in ("mask", "gender", "age")}  # fmt: skip
    return arg["mask"] * 6 + arg["gender"] * 3 + arg["age"]


def person_confusions(t: pd.DataFrame, pred: np.ndarray, persons: np.ndarray) -> np.ndarray:
    """(persons, 18 * 18) confusion counts of each person's photos: a resample's confusion is a weighted sum."""
    person_idx = pd.Index(persons).get_indexer(t["person"])
    cells = t["class"].to_numpy() * 18 + pred
    m = np.zeros((len(persons), 18 * 18))
    np.add.at(m, (person_idx, cells), 1)
    return m


def macro_f1(conf: np.ndarray) -> np.ndarray:
    """Macro-F1 of (B, 324) confusions, over the classes present in truth or prediction (sklearn's rule)."""
    c = conf.reshape(-1, 18, 18)
    tp = np.einsum("bii->bi", c)
    support, predicted = c.sum(2), c.sum(1)
    present = (support + predicted) > 0
    f1 = np.where(present, 2 * tp / np.maximum(support + predicted, 1e-12), 0.0)
    return f1.sum(1) / present.sum(1)


def log_losses(t: pd.DataFrame, persons: np.ndarray) -> dict[str, np.ndarray] | None:
    """Per head, each person's summed log-loss over their photos (None for hard answers)."""
    if "pred_class" in t:
        return None
    person_idx = pd.Index(persons).get_indexer(t["person"])
    out = {}
    for h in ("mask", "gender", "age"):
        p = t[[c for c in t.columns if c.startswith(f"{h}_") and c[len(h) + 1 :].isdigit()]].to_numpy()
        nll = -np.log(np.clip(p[np.arange(len(t)), t[h].to_numpy()], 1e-7, 1))
        out[h] = np.bincount(person_idx, nll, minlength=len(persons))
    return out


def paired(a: pd.DataFrame, b: pd.DataFrame, boot: int, seed: int = 0) -> dict:
    """Row b minus row a on the same photos: Δ macro-F1 and Δ log-loss per head, person-bootstrap 95 %."""
    a, b = a.sort_values("path").reset_index(drop=True), b.sort_values("path").reset_index(drop=True)
    if not (a["path"].to_numpy() == b["path"].to_numpy()).all():
        raise SystemExit("the two rows did not predict the same photos")
    persons = np.sort(a["person"].unique())
    ca, cb = person_confusions(a, predicted_class(a), persons), person_confusions(b, predicted_class(b), persons)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(len(persons), np.full(len(persons), 1 / len(persons)), size=boot).astype(float)
    d = macro_f1(w @ cb) - macro_f1(w @ ca)
    f1a, f1b = macro_f1(ca.sum(0, keepdims=True))[0], macro_f1(cb.sum(0, keepdims=True))[0]
    out = {"f1": round(float(f1b), 4), "f1_base": round(float(f1a), 4), "delta": round(float(f1b - f1a), 4),
           "lo": round(float(np.percentile(d, 2.5)), 4), "hi": round(float(np.percentile(d, 97.5)), 4)}  # fmt: skip
    la, lb = log_losses(a, persons), log_losses(b, persons)
    if la is not None and lb is not None:
        n = len(a)
        for h in la:
            diff = (w @ (lb[h] - la[h])) / (w @ np.bincount(pd.Index(persons).get_indexer(a["person"]),
                                                             minlength=len(persons)))  # fmt: skip
            out[f"logloss_{h}"] = round(float(lb[h].sum() / n), 4)
            lo, hi = np.percentile(diff, [2.5, 97.5])
            mean = (lb[h] - la[h]).sum() / n
            out[f"dlogloss_{h}"] = [round(float(mean), 4), round(float(lo), 4), round(float(hi), 4)]
    return out


def head_f1(t: pd.DataFrame) -> dict[str, float]:
    from sklearn.metrics import f1_score

    pred = predicted_class(t)
    guess = {"mask": pred // 6, "gender": (pred // 3) % 2, "age": pred % 3}
    return {h: round(float(f1_score(t[h], guess[h], average="macro")), 4) for h in guess}


# ---------------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", type=Path, default=SHARED / "data" / "maskproxy-dev")
    ap.add_argument("out", nargs="?", type=Path, default=ROOT / "bench" / "results" / "quality-oof")
    ap.add_argument("--rows", "--variants", default="base", help=f"comma-separated rows to (re)run: {', '.join(ROWS)}")
    ap.add_argument("--seed", type=int, default=42, help="training seed (the folds stay fixed)")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--boot", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--external", type=Path, default=SHARED / "data" / "utkface-extra" / "images")
    ap.add_argument("--report", action="store_true", help="only print the table of the rows already run")
    ap.add_argument("--markdown", action="store_true", help="with --report: the table as Markdown (the README's)")
    args = ap.parse_args()
    unknown = sorted(set(args.rows.split(",")) - set(ROWS))
    if unknown:
        ap.error(f"unknown row(s) {unknown}; known: {', '.join(ROWS)}")
    data, out = args.data.resolve(), args.out.resolve()
    answers = data / "eval_answers.csv"
    if not answers.is_file():
        ap.error(f"{answers}: the pool needs the eval answer key (ImageID,ans,mask,gender,age,person)")
    out.mkdir(parents=True, exist_ok=True)
    log, report_path = out / "quality.log", out / "quality.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {"rows": {}}
    crops, pool = out / "crops", out / "pool"
    # Haar first and 256x192, as every earlier row: the crops all rows of every era stand on
    if not (crops / "crop.json").is_file():
        run(maskcls("crop", "--data", data, "--out", crops, "--detectors", "haar,center", "--size", "256 192"), log)
    build_pool(crops, answers, pool)
    folds_csv = out / "folds.csv"
    folds = build_folds(pool, args.folds, folds_csv)
    report.update(
        data=str(data),
        base=BASE,
        folds=args.folds,
        persons=int(folds["person"].nunique()),
        protocol="k-fold OOF, every labelled person, last epoch, hflip TTA, folds fixed (seed 0)",
    )
    preds = out / "preds"
    preds.mkdir(exist_ok=True)
    for slug in [] if args.report else args.rows.split(","):
        row, key = ROWS[slug], f"{slug}-s{args.seed}"
        if row.anchor:
            table, seconds = anchor_row(args.seed, pool, out, folds, log)
        else:
            if "{external}" in row.flags and not args.external.is_dir():
                raise SystemExit(f"{args.external}: no external faces for the {slug} row")
            seconds = train_row(row, args.seed, pool, out, folds_csv, args.folds, args.external, log)
            table = held_out_predictions(out / "runs" / key, pool, folds)
        table.to_csv(preds / f"{key}.csv", index=False)
        report["rows"][key] = {"slug": slug, "name": row.name, "seed": args.seed, "wall_seconds": round(seconds),
                               "threads": os.cpu_count(), **head_f1(table)}  # fmt: skip
        report_path.write_text(json.dumps(report, indent=2) + "\n")
    compare(report, preds, args.boot)
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        print(markdown(report))
    console.print(f"wrote {report_path}")


def markdown(report: dict) -> str:
    """The rows as the README shows them: Δ macro-F1 [95 %], Δ log-loss of the age head [95 %], wall minutes."""
    head = "| row | seed | OOF macro-F1 | Δ macro-F1 [95 %] | Δ age log-loss [95 %] | mask / gender / age F1 | min |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for r in report["rows"].values():
        ref = "vs" not in r
        d = r.get("dlogloss_age")
        age = "" if d is None else ("ref" if ref else f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]")
        delta = "ref" if ref else f"**{r['delta']:+.4f}** [{r['lo']:+.4f}, {r['hi']:+.4f}]"
        minutes = r["wall_seconds"] / 60
        lines.append(f"| {r['name']} | {r['seed']} | {r['f1']:.4f} | {delta} | {age} | "
                     f"{r['mask']:.3f} / {r['gender']:.3f} / {r['age']:.3f} | {minutes:.0f} |")  # fmt: skip
    return "\n".join(lines)


def compare(report: dict, preds: Path, boot: int) -> None:
    """Every row against the base at its seed (base rows at other seeds against base-s42: the seed noise)."""
    rows = report["rows"]
    table = Table(title=f"paired against the base, {report.get('persons')} persons, {report.get('folds')}-fold OOF; "
                        "Δ [95 % person bootstrap]")  # fmt: skip
    for c in ("row", "seed", "macro-F1", "Δ macro-F1", "Δ log-loss mask", "Δ log-loss gender", "Δ log-loss age",
              "mask F1", "gender F1", "age F1", "wall min"):  # fmt: skip
        table.add_column(c, justify="left" if c == "row" else "right")
    first_base = min((r["seed"] for r in rows.values() if r["slug"] == "base"), default=None)
    for key, r in rows.items():
        ref = f"base-s{first_base if r['slug'] == 'base' else r['seed']}"
        if ref not in rows or not (preds / f"{key}.csv").is_file():
            continue
        if key != ref:
            r["vs"] = ref
            r.update(paired(pd.read_csv(preds / f"{ref}.csv"), pd.read_csv(preds / f"{key}.csv"), boot))
        else:
            r.update(paired(pd.read_csv(preds / f"{ref}.csv"), pd.read_csv(preds / f"{key}.csv"), 1))
            r.update(delta=0.0, lo=0.0, hi=0.0)

        def ll(h: str, r=r, is_ref=key == ref) -> str:
            d = r.get(f"dlogloss_{h}")
            return "" if d is None else ("ref" if is_ref else f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]")

        table.add_row(r["slug"], str(r["seed"]), f"{r['f1']:.4f}",
                      "ref" if key == ref else f"{r['delta']:+.4f} [{r['lo']:+.4f}, {r['hi']:+.4f}]",
                      ll("mask"), ll("gender"), ll("age"), f"{r['mask']:.3f}", f"{r['gender']:.3f}", f"{r['age']:.3f}",
                      f"{r['wall_seconds'] / 60:.1f}")  # fmt: skip
    console.print(table)
    for r in rows.values():
        console.print(f"[dim]{r['name']}[/]")


if __name__ == "__main__":
    main()

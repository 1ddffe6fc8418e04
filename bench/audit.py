"""Audit recall: plant wrong labels, train every fold, and count how many planted persons the audit ranks first.

    python bench/audit.py CROPS_DIR OUT_DIR [--flip 30] [--epochs 4] [--folds 5] [--seed 42]

CROPS_DIR is a contest-layout folder (e.g. bench/quality.py's OUT/crops). OUT/flipped/ becomes a
copy of it made of symlinks (no photo is copied) in which --flip persons have a wrong label: half
their gender swapped, half their age moved to another group (<30 -> 65, 30-59 -> 22, >=60 -> 45),
in both the folder name and train.csv. train-joint --fold all then gives every person an
out-of-fold prediction, `maskcls audit` ranks them, and the table says how many planted persons
land in the top k person rows of their head (k = planted, 2x planted, and the top 10% of persons)
and in the whole ranking's top 5% of rows. Writes OUT/audit.json. Run again on the same OUT_DIR, it
reuses the planted copy and the trained run (the planted persons are read back from the CSVs).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

console = Console()
NEW_AGE = {0: 65, 1: 22, 2: 45}  # a planted age lands in another group, away from the cut-offs


def plant(src: Path, dst: Path, n: int, seed: int) -> None:
    """dst: src with n persons' gender (first half) or age (second half) changed."""
    from maskcls.labels import age_group

    df = pd.read_csv(src / "train" / "train.csv", dtype={"id": str})
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(df), size=n, replace=False)
    for j, i in enumerate(picked):
        row = df.loc[i]
        head = "gender" if j < n // 2 else "age"
        if head == "gender":
            df.loc[i, "gender"] = "female" if row["gender"] == "male" else "male"
        else:
            df.loc[i, "age"] = NEW_AGE[int(age_group(int(row["age"])))]
    df["path"] = [f"{r.id}_{r.gender}_{r.race}_{r.age}" for r in df.itertuples()]
    old = pd.read_csv(src / "train" / "train.csv", dtype={"id": str})["path"]
    (dst / "train" / "images").mkdir(parents=True, exist_ok=True)
    for before, after in zip(old, df["path"], strict=True):
        link = dst / "train" / "images" / after
        if not link.exists():
            os.symlink((src / "train" / "images" / before).resolve(), link)
    df.to_csv(dst / "train" / "train.csv", index=False)


def planted_of(src: Path, dst: Path) -> pd.DataFrame:
    """person, head of every person whose gender or age differs between the two train.csv files."""
    a = pd.read_csv(src / "train" / "train.csv", dtype={"id": str}).set_index("id")
    b = pd.read_csv(dst / "train" / "train.csv", dtype={"id": str}).set_index("id").loc[a.index]
    rows = [{"person": p, "head": h} for h in ("gender", "age") for p in a.index[a[h] != b[h]]]
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("crops", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--flip", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    out = args.out.resolve()
    flipped = out / "flipped"
    if not flipped.exists():
        plant(args.crops.resolve(), flipped, args.flip, args.seed)
    planted = planted_of(args.crops.resolve(), flipped)
    log = out / "audit.log"
    recipe = ["--backbone", "resnet18", "--img-size", "128 96", "--batch-size", "32", "--lr", "0.002"]
    cmds = [
        ["train-joint", "--data", flipped, *recipe, "--epochs", args.epochs, "--folds", args.folds, "--fold", "all",
         "--seed", args.seed, "--out", out / "runs", "--name", "joint", "--cache-dir", out / "cache"],
        ["audit", out / "runs" / "joint", "--out", out / "audit"],
    ]  # fmt: skip
    if (out / "runs" / "joint" / "oof.csv").is_file():
        cmds = cmds[1:]  # trained already
    for cmd in cmds:
        cmd = [sys.executable, "-m", "maskcls", *map(str, cmd)]
        console.print(f"[dim]$ {shlex.join(cmd)}[/]")
        with open(log, "a") as f:
            if subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode:
                raise SystemExit(f"failed: {shlex.join(cmd)} -- see {log}")
    sus = pd.read_csv(out / "audit" / "suspects.csv", dtype={"person": str})
    persons = sus[sus["unit"] == "person"].reset_index(drop=True)
    n_persons = persons["person"].nunique()
    t = Table(title=f"audit recall: {args.flip} planted persons of {n_persons}, {args.folds} folds x {args.epochs} "
              "epochs")  # fmt: skip
    for c in ("planted head", "planted", "in top k", "in top 2k", "in top 10%", "median rank"):
        t.add_column(c, justify="left" if c == "planted head" else "right")
    result = {"flip": args.flip, "persons": n_persons, "epochs": args.epochs, "folds": args.folds, "heads": {}}
    for head, group in planted.groupby("head"):
        ranked = persons[persons["head"] == head].reset_index(drop=True)
        rank = ranked.reset_index().set_index("person")["index"] + 1  # 1 = the first suspect of this head
        ranks = rank.loc[group["person"]].to_numpy()
        k = len(group)
        tenth = len(ranked) // 10
        r = {"planted": k, "top_k": int((ranks <= k).sum()), "top_2k": int((ranks <= 2 * k).sum()),
             "top_10pct": int((ranks <= tenth).sum()), "top_10pct_random": k / 10,
             "median_rank": float(np.median(ranks))}  # fmt: skip
        result["heads"][head] = r
        t.add_row(head, str(k), f"{r['top_k']} / {k}", f"{r['top_2k']} / {k}", f"{r['top_10pct']} / {k}",
                  f"{r['median_rank']:.0f}")  # fmt: skip
    # the whole ranking (all heads, persons and images), as --exclude would take its top rows
    top = sus.head(int(0.05 * len(sus)))
    hit = planted.merge(top[top["unit"] == "person"], on=["person", "head"]).drop_duplicates(["person", "head"])
    result["whole_ranking_top_5pct"] = {"rows": len(top), "planted_found": len(hit)}
    console.print(t)
    console.print(f"whole ranking, top 5% of rows ({len(top)}): {len(hit)} of {args.flip} planted persons")
    (out / "audit.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {out / 'audit.json'}")


if __name__ == "__main__":
    main()

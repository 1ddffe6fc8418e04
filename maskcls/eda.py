"""Exploratory summary of a data set: rich tables, and PNG plots on request."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from rich.console import Console
from rich.table import Table

from maskcls import labels
from maskcls.data.dataset import decode, encoded_size
from maskcls.data.index import EvalIndex, TrainIndex
from maskcls.errors import MaskclsError
from maskcls.heads import class_names
from maskcls.runs import make_dir

SHOW_FIRST = 10  # how many junk entries and odd persons to list by name


def _counts_table(title: str, names: list[str], counts: pd.Series) -> Table:
    t = Table(title=title)
    t.add_column("code", justify="right")
    t.add_column("name")
    t.add_column("images", justify="right")
    t.add_column("share", justify="right")
    total = max(int(counts.sum()), 1)
    for code, name in enumerate(names):
        n = int(counts.get(code, 0))
        t.add_row(str(code), name, str(n), f"{100 * n / total:.1f}%")
    return t


def image_sizes(paths, limit: int | None = None) -> tuple[Counter, list[str]]:
    """(size counts, unreadable, truncated or corrupt paths).

    Every file is read whole and decoded at 1/8 scale (a JPEG's DCT scaling: about a millisecond),
    so a file that training or predict would refuse is listed here first, by the same checks
    (maskcls.data.dataset.decode: cut-off files, corrupt JPEG data, non-images).
    """
    sizes: Counter = Counter()
    bad = []
    for p in paths[:limit] if limit else paths:
        try:
            if not os.path.isfile(p):
                raise MaskclsError(f"{p}: not a regular file")
            img = decode(p, cv2.IMREAD_REDUCED_COLOR_8)
            with open(p, "rb") as f:
                hw = encoded_size(f.read(65536)) or (img.shape[0] * 8, img.shape[1] * 8)
            sizes[(hw[1], hw[0])] += 1
        except Exception:  # any decoder failure means the same thing here: unreadable
            bad.append(p)
    return sizes, bad


def report(index: TrainIndex, eval_index: EvalIndex | None, console: Console, age_upper: int) -> dict:
    """Print the EDA tables; return the figures as a dict (also handy for tests)."""
    t = index.table
    persons = index.persons
    summary = Table(title=f"maskcls eda: {index.root}")
    summary.add_column("what")
    summary.add_column("count", justify="right")
    summary.add_row("persons", str(len(persons)))
    summary.add_row("train images", str(len(t)))
    odd = persons[persons["images"] != 7]
    summary.add_row("persons with other than 7 images", str(len(odd)))
    summary.add_row("junk skipped", str(len(index.junk)))
    summary.add_row("train.csv disagreements", str(len(index.csv_disagreements)))
    if eval_index is not None:
        summary.add_row("eval images", str(len(eval_index.table)))
    console.print(summary)

    console.print(_counts_table("mask", labels.MASK_NAMES, t["mask"].value_counts()))
    console.print(_counts_table("gender (images)", labels.GENDER_NAMES, t["gender"].value_counts()))
    console.print(
        _counts_table(f"age group (threshold {age_upper})", labels.age_names(age_upper), t["age"].value_counts())
    )
    console.print(_counts_table("18 classes", class_names(age_upper), t["class"].value_counts()))

    edges = list(range(0, 100, 10))
    hist, _ = np.histogram(persons["age_years"], bins=[*edges, 200])
    ages = Table(title="age histogram (persons)")
    ages.add_column("years")
    ages.add_column("persons", justify="right")
    ages.add_column("")
    for lo, n in zip(edges, hist, strict=True):
        ages.add_row(f"{lo}-{lo + 9}" if lo < 90 else "90+", str(n), "#" * int(40 * n / max(hist.max(), 1)))
    console.print(ages)

    sizes, unreadable = image_sizes(t["path"].tolist())
    if eval_index is not None:  # eval photos too: predict would refuse them only at the end of a day
        unreadable += image_sizes(eval_index.table["path"].tolist())[1]
    st = Table(title="image sizes (W x H)")
    st.add_column("size")
    st.add_column("images", justify="right")
    for (w, h), n in sizes.most_common(5):
        st.add_row(f"{w} x {h}", str(n))
    if unreadable:
        st.add_row("[red]unreadable or truncated[/]", str(len(unreadable)))
    console.print(st)

    if len(odd):
        console.print(
            f"persons with other than 7 images: {len(odd)}, e.g. "
            + ", ".join(
                f"{p} ({n})" for p, n in zip(odd["person"][:SHOW_FIRST], odd["images"][:SHOW_FIRST], strict=True)
            )
        )
    if index.junk:
        console.print(f"junk skipped: {len(index.junk)}, e.g.")
        for path, why in index.junk[:SHOW_FIRST]:
            console.print(f"  {path}: {why}", markup=False)
    for line in index.csv_disagreements[:SHOW_FIRST]:
        console.print(f"  train.csv: {line}", markup=False)
    for p in unreadable[:SHOW_FIRST]:
        console.print(f"  unreadable or truncated image: {p}", markup=False)
    return {
        "persons": len(persons), "images": len(t), "junk": len(index.junk), "odd_persons": len(odd),
        "unreadable": len(unreadable), "classes": t["class"].value_counts().sort_index().to_dict(),
        "eval_images": None if eval_index is None else len(eval_index.table),
    }  # fmt: skip


def plots(index: TrainIndex, out: str | Path, age_upper: int, per_class: int = 4, seed: int = 0) -> list[Path]:
    """Write age_hist.png, class_bars.png and samples.png (a grid per class) into out."""
    from maskcls.plots import pyplot

    plt = pyplot()

    out = Path(out)
    make_dir(out, "--plots")
    t = index.table
    written = []

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(index.persons["age_years"], bins=range(0, 101, 2), color="tab:blue")
    for x in (labels.AGE_LOWER, age_upper):
        ax.axvline(x, color="tab:red", ls="--")
    ax.set(xlabel="age (years)", ylabel="persons", title="age histogram (dashed: group thresholds)")
    written.append(_save(fig, out / "age_hist.png"))

    fig, ax = plt.subplots(figsize=(10, 4))
    counts = t["class"].value_counts().reindex(range(labels.NUM_CLASSES), fill_value=0)
    ax.bar(range(labels.NUM_CLASSES), counts.to_numpy(), color="tab:green")
    ax.set_xticks(range(labels.NUM_CLASSES), class_names(age_upper), rotation=70, fontsize=7)
    ax.set(ylabel="images", title="images per class")
    written.append(_save(fig, out / "class_bars.png"))

    rng = np.random.default_rng(seed)
    size = (per_class * 1.5 + 2.2, labels.NUM_CLASSES * 1.9)
    fig, axes = plt.subplots(labels.NUM_CLASSES, per_class + 1, figsize=size,
                             gridspec_kw={"width_ratios": [1.6] + [1] * per_class})  # fmt: skip
    for c in range(labels.NUM_CLASSES):
        rows = t[t["class"] == c]
        pick = rows.iloc[rng.choice(len(rows), size=min(per_class, len(rows)), replace=False)] if len(rows) else rows
        axes[c, 0].axis("off")
        axes[c, 0].text(0, 0.5, f"{c}: {class_names(age_upper)[c]}\n{len(rows)} images", fontsize=9, va="center")
        for k in range(per_class):
            ax = axes[c, k + 1]
            ax.axis("off")
            if k < len(pick):
                row = pick.iloc[k]
                with Image.open(row["path"]) as im:
                    ax.imshow(im.convert("RGB").resize((96, 128)))
                ax.set_title(f"{row['person'][:10]}, {row['age_years']} y", fontsize=7)  # who, and how old
    written.append(_save(fig, out / "samples.png"))
    return written


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    from maskcls import io

    fig.tight_layout()
    io.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path

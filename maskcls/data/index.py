"""Scan the contest layout into one table, one row per image.

    DATA/train/images/<id>_<gender>_<race>_<age>/<stem>.<jpg|jpeg|png>
    DATA/train/train.csv            id,gender,race,age,path   (optional, cross-checked)
    DATA/eval/images/<ImageID>
    DATA/eval/info.csv              ImageID,ans

Junk that real archives carry (AppleDouble `._*` files, hidden folders, unknown stems,
non-images) is skipped and reported, never silently dropped. Anything that makes the
contract ambiguous (a folder name that does not parse, an unreadable CSV) is an error.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls import labels
from maskcls.errors import MaskclsError
from maskcls.io import read_csv

IMAGE_EXTS = {".jpg", ".jpeg", ".png"}
MAX_AGE = labels.MAX_AGE
PERSON_RE = re.compile(r"^(?P<id>[0-9A-Za-z]+)_(?P<gender>male|female)_(?P<race>[^_]+)_(?P<age>\d{1,3})$", re.I)
TRAIN_CSV_COLUMNS = ["id", "gender", "race", "age", "path"]
INDEX_COLUMNS = [
    "person",
    "gender_name",
    "race",
    "age_years",
    "stem",
    "path",
    "mask",
    "gender",
    "age",
    "class",
]


@dataclass
class TrainIndex:
    """The train table plus what the scan skipped or found inconsistent."""

    table: pd.DataFrame
    root: Path
    junk: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    csv_disagreements: list[str] = field(default_factory=list)

    @property
    def persons(self) -> pd.DataFrame:
        """One row per person: id, gender, age group, images."""
        return (
            self.table.groupby("person", sort=True)
            .agg(gender=("gender", "first"), age=("age", "first"), age_years=("age_years", "first"),
                 race=("race", "first"), images=("path", "size"))
            .reset_index()
        )  # fmt: skip


@dataclass
class EvalIndex:
    table: pd.DataFrame  # ImageID, path, in info.csv order
    root: Path


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _scan_person(folder: os.DirEntry, junk: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Valid (stem, path) pairs of one person folder; everything else goes to junk."""
    found: dict[str, str] = {}
    for entry in sorted(os.scandir(folder.path), key=lambda e: e.name):
        rel = f"{folder.name}/{entry.name}"
        stem, ext = os.path.splitext(entry.name)
        if entry.name.startswith("._"):
            junk.append((rel, "AppleDouble metadata file"))
        elif _is_hidden(entry.name):
            junk.append((rel, "hidden file or folder"))
        elif entry.is_dir():
            junk.append((rel, "folder inside a person folder"))
        elif not entry.is_file():
            junk.append((rel, "not a regular file (FIFO, socket, device or broken link)"))
        elif ext.lower() not in IMAGE_EXTS:
            junk.append((rel, f"not an image ({ext or 'no extension'})"))
        elif labels.mask_from_stem(stem) is None:
            junk.append((rel, f"unknown stem {stem!r}"))
        elif stem in found:
            junk.append((rel, f"second file for stem {stem!r} (kept {os.path.basename(found[stem])})"))
        else:
            found[stem] = entry.path
    return sorted(found.items())


def scan_train(data: str | Path, age_upper: int = labels.DEFAULT_AGE_UPPER) -> TrainIndex:
    """Index DATA/train/images into one row per image with per-task labels."""
    root = Path(data)
    images = root / "train" / "images"
    if not images.is_dir():
        raise MaskclsError(f"{images}: directory not found (expected DATA/train/images/<id>_<gender>_<race>_<age>/)")
    junk: list[tuple[str, str]] = []
    rows = []
    for folder in sorted(os.scandir(images), key=lambda e: e.name):
        if _is_hidden(folder.name):
            junk.append((folder.name, "hidden folder" if folder.is_dir() else "hidden file"))
            continue
        if not folder.is_dir():
            junk.append((folder.name, "file outside a person folder"))
            continue
        m = PERSON_RE.match(folder.name)
        if m is None:
            raise MaskclsError(
                f"{folder.path}: folder name does not parse as <id>_<gender>_<race>_<age> (e.g. 000001_female_Asian_45)"
            )
        if int(m["age"]) > MAX_AGE:
            raise MaskclsError(f"{folder.path}: age {m['age']} in the folder name is not plausible (max {MAX_AGE})")
        for stem, path in _scan_person(folder, junk):
            rows.append((m["id"], m["gender"].lower(), m["race"], int(m["age"]), stem, path))
    if not rows:
        raise MaskclsError(f"{images}: no images found")
    table = pd.DataFrame(rows, columns=["person", "gender_name", "race", "age_years", "stem", "path"])
    table = add_labels(table, age_upper)
    index = TrainIndex(table=table, root=root, junk=junk)
    csv_path = root / "train" / "train.csv"
    if csv_path.exists():
        index.csv_disagreements = cross_check(table, csv_path)
    return index


def add_labels(table: pd.DataFrame, age_upper: int) -> pd.DataFrame:
    """Per-task label columns (mask, gender, age group, 18-class) from the raw fields."""
    t = table.copy()
    t["mask"] = t["stem"].map(labels.STEM_TO_MASK).astype(np.int64)
    t["gender"] = t["gender_name"].map(labels.GENDER_TO_CODE).astype(np.int64)
    t["age"] = labels.age_group(t["age_years"].to_numpy(), age_upper)
    t["class"] = labels.encode(t["mask"].to_numpy(), t["gender"].to_numpy(), t["age"].to_numpy())
    return t[INDEX_COLUMNS].reset_index(drop=True)


def cross_check(table: pd.DataFrame, csv_path: Path) -> list[str]:
    """Disagreements between the folder names and train.csv, as readable lines."""
    csv = read_csv(csv_path, TRAIN_CSV_COLUMNS, dtype=str, keep_default_na=False)
    first = table.drop_duplicates("person")
    folders = {os.path.basename(os.path.dirname(r.path)): r for r in first.itertuples(index=False)}
    out = []
    for row in csv.itertuples(index=False):
        f = folders.get(row.path)
        if f is None:
            out.append(f"train.csv lists {row.path} but no such folder holds images")
            continue
        for col, mine in (("id", f.person), ("gender", f.gender_name), ("age", str(f.age_years))):
            theirs = str(getattr(row, col)).strip()
            if (theirs.lower() if col == "gender" else theirs) != mine:
                out.append(f"{row.path}: train.csv says {col} {theirs!r}, the folder name says {mine!r}")
    out += [f"folder {name} is not listed in train.csv" for name in sorted(set(folders) - set(csv["path"]))]
    return out


def check_image_id(name, source: Path, row: int) -> None:
    """An ImageID is a plain file name inside eval/images: no folders, no '..', nothing hidden."""
    if not isinstance(name, str) or not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise MaskclsError(f"{source}: row {row}: ImageID {name!r} is not a plain file name (no folders or '..')")


def scan_eval(data: str | Path) -> EvalIndex:
    """DATA/eval/info.csv rows with the path of each listed image; a missing image is an error."""
    root = Path(data)
    info_path = root / "eval" / "info.csv"
    info = read_csv(info_path, ["ImageID", "ans"], dtype={"ImageID": str})
    for i, name in enumerate(info["ImageID"]):
        check_image_id(name, info_path, i + 2)
    dup = info["ImageID"][info["ImageID"].duplicated()]
    if len(dup):
        raise MaskclsError(f"{info_path}: ImageID {dup.iloc[0]} is listed more than once ({len(dup)} duplicates)")
    images = root / "eval" / "images"
    paths = [str(images / name) for name in info["ImageID"]]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        what = "not a regular file" if os.path.lexists(missing[0]) else "missing"
        raise MaskclsError(f"{missing[0]}: listed in {info_path} but {what}{more}")
    return EvalIndex(table=pd.DataFrame({"ImageID": info["ImageID"], "path": paths}), root=root)

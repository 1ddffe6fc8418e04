"""Prediction files: ImageID plus `<head>_<k>` probability columns, read and checked in one place.

A file with age probabilities also records the age threshold its classes were made with
(`age_upper`, one value on every row: predict writes it), so ensemble, submit and pseudo-label
read it instead of being told, and refuse to mix two meanings of "30-59".
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls.errors import MaskclsError
from maskcls.heads import HEADS, check_probs
from maskcls.io import read_csv
from maskcls.settings import BY_KEY

COLUMN_RE = re.compile(rf"^({'|'.join(HEADS)})_(\d+)$")
AGE_UPPER = "age_upper"


def heads_of(df: pd.DataFrame) -> list[str]:
    found = []
    for c in df.columns:
        m = COLUMN_RE.match(c)
        if m and m[1] not in found:
            found.append(m[1])
    return found


def read_probs(path: str | Path) -> pd.DataFrame:
    """A prediction CSV, checked: known heads with every class column, no gaps, rows summing to 1."""
    path = Path(path)
    df = read_csv(path, ["ImageID"], dtype={"ImageID": str})
    heads = heads_of(df)
    if not heads:
        raise MaskclsError(f"{path}: no probability columns (expected e.g. mask_0..mask_2, age_0..age_2)")
    check_probs(df, path)
    age_upper_of(df, str(path))
    if df["ImageID"].duplicated().any():
        raise MaskclsError(f"{path}: ImageID {df['ImageID'][df['ImageID'].duplicated()].iloc[0]} appears twice")
    return df


def age_upper_of(df: pd.DataFrame, source: str) -> int | None:
    """The age threshold a prediction file records, or None (no age head, or a file from before it was recorded)."""
    if AGE_UPPER not in df:
        return None
    values = pd.to_numeric(df[AGE_UPPER], errors="coerce").unique()
    lo, hi = BY_KEY[AGE_UPPER].range[:2]
    if len(values) != 1 or not (np.isfinite(values[0]) and float(values[0]).is_integer() and lo <= values[0] <= hi):
        shown = ", ".join(map(str, df[AGE_UPPER].astype(str).unique()[:3]))
        raise MaskclsError(f"{source}: {AGE_UPPER} must be one whole number in {lo}..{hi} on every row (got {shown})")
    return int(values[0])


def shared_age_upper(frames: dict[str, pd.DataFrame], given: int | None = None) -> int | None:
    """The one age threshold the files record (None when none does); `given` (--age-upper) must match it."""
    found = {src: v for src, df in frames.items() if (v := age_upper_of(df, src)) is not None}
    if len(set(found.values())) > 1:
        listed = ", ".join(f"{src}: {v}" for src, v in found.items())
        raise MaskclsError(f"the prediction files use different age thresholds ({listed}): use files of one age_upper")
    upper = next(iter(found.values()), None)
    if given is not None and upper is not None and given != upper:
        src = next(iter(found))
        raise MaskclsError(f"--age-upper {given}, but {src} was made with age_upper {upper} (predict records it): "
                           "drop --age-upper")  # fmt: skip
    return upper if upper is not None else given


def task_probs(df: pd.DataFrame, task: str, source: str) -> np.ndarray:
    if task not in heads_of(df):
        raise MaskclsError(f"{source}: has no {task} predictions (heads: {', '.join(heads_of(df))})")
    return df[HEADS[task].columns()].to_numpy(dtype=np.float64)


def align(df: pd.DataFrame, image_ids: pd.Series, source: str, reference: str) -> pd.DataFrame:
    """df reordered to image_ids; a different set of ImageIDs is an error naming both files."""
    mine, theirs = set(df["ImageID"]), set(image_ids)
    if mine != theirs:
        missing, extra = len(theirs - mine), len(mine - theirs)
        raise MaskclsError(
            f"{source}: ImageIDs do not match {reference} ({missing} missing, {extra} not in it): another data set?"
        )
    return df.set_index("ImageID").loc[list(image_ids)].reset_index()

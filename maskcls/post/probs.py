"""Prediction files: ImageID plus `<head>_<k>` probability columns, read and checked in one place."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls.errors import MaskclsError
from maskcls.heads import HEADS, check_probs
from maskcls.io import read_csv

COLUMN_RE = re.compile(rf"^({'|'.join(HEADS)})_(\d+)$")


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
    if df["ImageID"].duplicated().any():
        raise MaskclsError(f"{path}: ImageID {df['ImageID'][df['ImageID'].duplicated()].iloc[0]} appears twice")
    return df


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

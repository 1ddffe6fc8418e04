"""Person-grouped, stratified folds: the seven photos of a person never straddle train and validation.

A holdout split is fold 0 of a K-fold assignment (K=5 holds out 20%), so one mechanism
serves both. The assignment is a CSV (person, fold) written into the run directory and
reused by --resume and by later stages.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from maskcls import io
from maskcls.data.index import read_csv
from maskcls.errors import MaskclsError


def assign_folds(table: pd.DataFrame, folds: int = 5, seed: int = 42, stratify: str = "class") -> pd.DataFrame:
    """One row per person: person, fold in 0..folds-1.

    Uses scikit-learn's StratifiedGroupKFold on the images (groups = persons, y = the
    18-class label), which is seeded; pandas-streaming's train_test_apart_stratify was
    the other candidate but ignores random_state, so a seed could not change the split.
    """
    persons = table["person"].to_numpy()
    n_persons = len(np.unique(persons))
    if folds < 2 or folds > n_persons:
        raise MaskclsError(f"cannot make {folds} folds from {n_persons} persons")
    skf = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of: dict[str, int] = {}
    with warnings.catch_warnings():  # rare classes (fewer members than folds) are expected; they spread anyway
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        splits = list(skf.split(np.zeros(len(table)), table[stratify].to_numpy(), persons))
    for k, (_, val_idx) in enumerate(splits):
        for p in np.unique(persons[val_idx]):
            fold_of[p] = k
    out = pd.DataFrame({"person": list(fold_of), "fold": list(fold_of.values())})
    return out.sort_values("person").reset_index(drop=True)


def save_folds(folds: pd.DataFrame, path: str | Path) -> Path:
    return io.write_csv(path, folds)


def load_folds(path: str | Path) -> pd.DataFrame:
    return read_csv(Path(path), ["person", "fold"], dtype={"person": str, "fold": int})


def apply_folds(table: pd.DataFrame, folds: pd.DataFrame, source: str = "folds file") -> pd.DataFrame:
    """table with a fold column; every person of the table must have a fold."""
    out = table.merge(folds, on="person", how="left", validate="many_to_one")
    missing = out.loc[out["fold"].isna(), "person"].unique()
    if len(missing):
        raise MaskclsError(f"{source}: no fold for {len(missing)} person(s), e.g. {missing[0]}")
    out["fold"] = out["fold"].astype(int)
    return out

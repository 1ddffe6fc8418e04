"""Person-grouped, stratified folds: the seven photos of a person never straddle train and validation.

A holdout split is fold 0 of a K-fold assignment (K=5 holds out 20%), so one mechanism
serves both. Two methods (`split_method`): StratifiedGroupKFold (default) and pandas-streaming's
apart-stratify, each a function of (table, folds, seed) only. The assignment is a CSV (person,
fold) written into the run directory and reused by --resume and by later stages.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from maskcls import io
from maskcls.errors import MaskclsError
from maskcls.io import read_csv
from maskcls.registry import Registry

SPLITS = Registry("split_method")  # name -> f(table, folds, seed, stratify) -> {person: fold}


@SPLITS.register("sgkf")
def sgkf(table: pd.DataFrame, folds: int, seed: int, stratify: str) -> dict[str, int]:
    """scikit-learn's StratifiedGroupKFold on the images: groups = persons, y = the stratify column."""
    persons = table["person"].to_numpy()
    skf = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # rare classes (fewer members than folds) are expected; they spread anyway
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        splits = list(skf.split(np.zeros(len(table)), table[stratify].to_numpy(), persons))
    return {p: k for k, (_, val_idx) in enumerate(splits) for p in np.unique(persons[val_idx])}


@SPLITS.register("apart")
def apart(table: pd.DataFrame, folds: int, seed: int, stratify: str) -> dict[str, int]:
    """pandas-streaming's train_test_apart_stratify, peeled off K-1 times (1/K, 1/(K-1), ... of the rest).

    It is built for this case: a group (person) sits in several strata (their photos' classes). Used
    as shipped it is not reproducible: its random_state is never applied (it permutes a copy and
    drops it) and it walks Python sets, whose order for strings changes with every process. So the
    persons get seeded random integer names and it runs with sorted_indices=True: it then takes the
    first persons of a seeded order, and the split depends on (table, folds, seed) alone.
    """
    from pandas_streaming.df import train_test_apart_stratify

    persons = np.unique(table["person"].to_numpy())
    code = dict(zip(persons, np.random.default_rng(seed).permutation(len(persons)).tolist(), strict=True))
    rest = pd.DataFrame({"g": table["person"].map(code).to_numpy(), "s": table[stratify].to_numpy()})
    name = {c: p for p, c in code.items()}
    fold_of: dict[str, int] = {}
    for k in range(folds - 1):
        _, held = train_test_apart_stratify(rest, group="g", stratify="s", test_size=1 / (folds - k),
                                            sorted_indices=True)  # fmt: skip
        left = rest["g"].nunique()
        # on few persons a peel can take too many (or none): keep one person for every later fold
        take = sorted(held["g"].unique())[: left - (folds - k - 1)] or [rest["g"].min()]
        for g in take:
            fold_of[name[g]] = k
        held = rest[rest["g"].isin(take)]
        rest = rest[~rest["g"].isin(held["g"])]
    for g in rest["g"].unique():
        fold_of[name[g]] = folds - 1
    return fold_of


def assign_folds(table: pd.DataFrame, folds: int = 5, seed: int = 42, stratify: str = "class",
                 method: str = "sgkf") -> pd.DataFrame:  # fmt: skip
    """One row per person: person, fold in 0..folds-1; every fold holds someone."""
    n_persons = table["person"].nunique()
    if folds < 2 or folds > n_persons:
        raise MaskclsError(f"cannot make {folds} folds from {n_persons} persons")
    fold_of = SPLITS[method](table, folds, seed, stratify)
    empty = sorted(set(range(folds)) - set(fold_of.values()))
    if empty:
        raise MaskclsError(f"split {method!r} left fold {empty[0]} empty ({n_persons} persons, {folds} folds)")
    out = pd.DataFrame({"person": list(fold_of), "fold": list(fold_of.values())})
    return out.sort_values("person").reset_index(drop=True)


def save_folds(folds: pd.DataFrame, path: str | Path) -> Path:
    return io.write_csv(path, folds)


def load_folds(path: str | Path) -> pd.DataFrame:
    return read_csv(Path(path), ["person", "fold"], dtype={"person": str, "fold": int})


def run_folds(cfg, table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """A run's fold of every person, kept in `path` (RUN/folds.csv): the file there (a resumed run: the
    very same split), else cfg.folds_file, else a new split by cfg.split_method and cfg.seed."""
    if path.exists():
        return load_folds(path)
    folds = load_folds(cfg.folds_file) if cfg.folds_file else assign_folds(
        table, folds=cfg.folds, seed=cfg.seed, method=cfg.split_method)  # fmt: skip
    save_folds(folds, path)
    return folds


def apply_folds(table: pd.DataFrame, folds: pd.DataFrame, source: str = "folds file") -> pd.DataFrame:
    """table with a fold column; every person of the table must have a fold."""
    out = table.merge(folds, on="person", how="left", validate="many_to_one")
    missing = out.loc[out["fold"].isna(), "person"].unique()
    if len(missing):
        raise MaskclsError(f"{source}: no fold for {len(missing)} person(s), e.g. {missing[0]}")
    out["fold"] = out["fold"].astype(int)
    return out

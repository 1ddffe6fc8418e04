"""The training table: the scanned train index plus rows from elsewhere — pseudo-labelled eval
images (`extra`) and external faces of known age and gender (`external`, data/external.py).

Those rows train but never validate: they carry `train_only=True`, and the trainer gives them
fold -1. `balance` is the label the class-balanced sampler draws by (the 18-class label; for
external faces, whose mask is unknown, their own gender x age groups).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console

from maskcls import labels
from maskcls.data.external import frame_external, scan_external
from maskcls.data.index import read_csv, scan_train
from maskcls.errors import MaskclsError

PSEUDO_COLUMNS = ["ImageID", "path", "mask", "gender", "age", "class", "confidence", "age_upper"]


def load_table(cfg, console=None) -> pd.DataFrame:
    """Train index (cfg.data) plus cfg.extra's pseudo rows and cfg.external's faces (re-framed into cfg.out)."""
    parts = [scan_train(cfg.data, cfg.age_upper).table.assign(pseudo=False, external=False)]
    if cfg.extra:
        parts.append(load_pseudo(cfg.extra, cfg.age_upper).assign(pseudo=True, external=False))
    if cfg.external:
        if cfg.task == "mask":
            raise MaskclsError("--external faces teach age and gender; train-mask has neither head")
        ext = scan_external(cfg.external, cfg.age_upper)
        parts.append(frame_external(ext, cfg.data, cfg.out, console or Console()).assign(pseudo=False, external=True))
    table = pd.concat(parts, ignore_index=True)
    table["train_only"] = table["pseudo"] | table["external"]
    table["balance"] = table["balance"].fillna(table["class"]).astype(int) if "balance" in table else table["class"]
    return table


def drop_ages(table: pd.DataFrame, ages: set[int]) -> pd.DataFrame:
    """The rows whose age in years is not in `ages` (rows of unknown age, -1, stay)."""
    return table[~table["age_years"].isin(ages)] if ages else table


def load_pseudo(path: str | Path, age_upper: int) -> pd.DataFrame:
    """Pseudo rows shaped like the train index (person = one group per image, fold assigned later)."""
    path = Path(path)
    df = read_csv(path, PSEUDO_COLUMNS, dtype={"ImageID": str})
    if len(df) and (df["age_upper"] != age_upper).any():
        raise MaskclsError(f"{path}: made with age threshold {df['age_upper'].iloc[0]}, training uses {age_upper}")
    # Older files hold paths relative to where they were made: try the working folder, then the CSV's.
    df["path"] = [p if Path(p).is_file() else str(path.parent / p) for p in df["path"]]
    missing = [p for p in df["path"] if not Path(p).is_file()]
    if missing:
        raise MaskclsError(f"{path}: image {missing[0]} does not exist ({len(missing)} missing)")
    return pd.DataFrame({
        "person": "pseudo-" + df["ImageID"], "gender_name": df["gender"].map(dict(enumerate(labels.GENDER_NAMES))),
        "race": "", "age_years": -1, "stem": "pseudo", "path": df["path"],
        "mask": df["mask"], "gender": df["gender"], "age": df["age"], "class": df["class"],
    })  # fmt: skip

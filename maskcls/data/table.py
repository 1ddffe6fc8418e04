"""The training table: the scanned train index plus rows from elsewhere (pseudo-labelled eval images).

Extra rows train but never validate: they carry `pseudo=True`, and the trainer gives them fold -1.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from maskcls import labels
from maskcls.data.index import read_csv, scan_train
from maskcls.errors import MaskclsError

PSEUDO_COLUMNS = ["ImageID", "path", "mask", "gender", "age", "class", "confidence", "age_upper"]


def load_table(cfg) -> pd.DataFrame:
    """Train index (cfg.data) plus cfg.extra's pseudo-labelled rows, marked by a `pseudo` column."""
    table = scan_train(cfg.data, cfg.age_upper).table
    table["pseudo"] = False
    if cfg.extra:
        extra = load_pseudo(cfg.extra, cfg.age_upper)
        extra["pseudo"] = True
        table = pd.concat([table, extra], ignore_index=True)
    return table


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

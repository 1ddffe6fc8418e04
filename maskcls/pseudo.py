"""Pseudo-labels: eval images every task predicts confidently become extra training rows.

They train but never validate: the trainer gives them fold -1 and marks them `pseudo`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from maskcls import io, labels
from maskcls.data import scan_eval
from maskcls.data.index import read_csv
from maskcls.errors import MaskclsError
from maskcls.submit import combine

PSEUDO_COLUMNS = ["ImageID", "path", "mask", "gender", "age", "class", "confidence", "age_upper"]


def pseudo_label(sources: dict[str, Path], data: Path, threshold: float, age_upper: int) -> pd.DataFrame:
    if not 0 < threshold <= 1:
        raise MaskclsError(f"--threshold must be in (0, 1] (got {threshold})")
    ev = scan_eval(data).table
    probs = combine(sources, ev["ImageID"], str(Path(data) / "eval" / "info.csv"))
    conf = np.min([probs[t].max(1) for t in ("mask", "gender", "age")], axis=0)
    pred = {t: probs[t].argmax(1) for t in ("mask", "gender", "age")}
    out = pd.DataFrame({"ImageID": ev["ImageID"], "path": ev["path"], **pred})
    out["class"] = labels.encode(out["mask"].to_numpy(), out["gender"].to_numpy(), out["age"].to_numpy())
    out["confidence"] = conf
    out["age_upper"] = age_upper
    return out[conf >= threshold][PSEUDO_COLUMNS].reset_index(drop=True)


def write_pseudo(df: pd.DataFrame, out: Path) -> Path:
    return io.write_csv(out, df)


def load_pseudo(path: str | Path, age_upper: int) -> pd.DataFrame:
    """Pseudo rows shaped like the train index (person = one group per image, fold assigned later)."""
    path = Path(path)
    df = read_csv(path, PSEUDO_COLUMNS, dtype={"ImageID": str})
    if len(df) and (df["age_upper"] != age_upper).any():
        raise MaskclsError(f"{path}: made with age threshold {df['age_upper'].iloc[0]}, training uses {age_upper}")
    missing = [p for p in df["path"] if not Path(p).is_file()]
    if missing:
        raise MaskclsError(f"{path}: image {missing[0]} does not exist ({len(missing)} missing)")
    return pd.DataFrame({
        "person": "pseudo-" + df["ImageID"], "gender_name": df["gender"].map(dict(enumerate(labels.TASKS["gender"]))),
        "race": "", "age_years": -1, "stem": "pseudo", "path": df["path"],
        "mask": df["mask"], "gender": df["gender"], "age": df["age"], "class": df["class"],
    })  # fmt: skip

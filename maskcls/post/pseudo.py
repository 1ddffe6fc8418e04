"""Pseudo-labels: eval images every task predicts confidently become extra training rows.

They train but never validate: the trainer gives them fold -1 and marks them `pseudo`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from maskcls import io, labels
from maskcls.data import scan_eval
from maskcls.data.table import PSEUDO_COLUMNS
from maskcls.errors import MaskclsError
from maskcls.heads import FACTORS
from maskcls.post.submit import combine


def pseudo_label(sources: dict[str, Path], data: Path, threshold: float, age_upper: int | None = None) -> pd.DataFrame:
    """Confident eval images as training rows; they record the age threshold of their age labels (the one
    the prediction files record, else age_upper), and a run of another threshold refuses them."""
    if not 0 < threshold <= 1:
        raise MaskclsError(f"--threshold must be in (0, 1] (got {threshold})")
    ev = scan_eval(data).table
    probs, age_upper = combine(sources, ev["ImageID"], str(Path(data) / "eval" / "info.csv"), age_upper)
    conf = np.min([probs[t].max(1) for t in FACTORS], axis=0)
    pred = {t: probs[t].argmax(1) for t in FACTORS}
    # Absolute paths: the CSV keeps working when training runs from another folder.
    out = pd.DataFrame({"ImageID": ev["ImageID"], "path": [os.path.abspath(p) for p in ev["path"]], **pred})
    out["class"] = labels.encode(*(out[t].to_numpy() for t in FACTORS))
    out["confidence"] = conf
    out["age_upper"] = age_upper
    return out[conf >= threshold][PSEUDO_COLUMNS].reset_index(drop=True)


def write_pseudo(df: pd.DataFrame, out: Path) -> Path:
    return io.write_csv(out, df)

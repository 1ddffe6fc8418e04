"""Soft voting of prediction files of the same task(s): weighted arithmetic or geometric mean."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from maskcls import io
from maskcls.errors import MaskclsError
from maskcls.heads import HEADS
from maskcls.post.probs import AGE_UPPER, align, heads_of, read_probs, shared_age_upper

METHODS = ("mean", "geometric")


def ensemble(paths: list[Path], weights: list[float] | None = None, method: str = "mean") -> pd.DataFrame:
    if method not in METHODS:
        raise MaskclsError(f"--method must be one of {', '.join(METHODS)} (got {method!r})")
    weights = weights or [1.0] * len(paths)
    w = np.asarray(weights, dtype=np.float64)
    with np.errstate(over="ignore"):  # 1e308 + 1e308 overflows to inf: refused below, no warning
        total = w.sum() if len(w) == len(paths) and np.isfinite(w).all() else np.nan
    if len(w) != len(paths) or not np.isfinite(total) or (w < 0).any() or total <= 0:
        raise MaskclsError(f"--weights needs {len(paths)} finite non-negative numbers with a positive, finite sum "
                           f"(got {','.join(map(str, weights))})")  # fmt: skip
    w = w / total
    frames = [read_probs(p) for p in paths]
    age_upper = shared_age_upper({str(p): df for p, df in zip(paths, frames, strict=True)})
    ref, heads = frames[0], heads_of(frames[0])
    for p, df in zip(paths[1:], frames[1:], strict=True):
        if heads_of(df) != heads:
            raise MaskclsError(f"{p}: heads {heads_of(df)} differ from {paths[0]}'s {heads}")
    frames = [ref] + [
        align(df, ref["ImageID"], str(p), str(paths[0])) for p, df in zip(paths[1:], frames[1:], strict=True)
    ]
    out = pd.DataFrame({"ImageID": ref["ImageID"]})
    for head in heads:
        cols = HEADS[head].columns()
        stack = np.stack([df[cols].to_numpy(dtype=np.float64) for df in frames])  # (files, N, classes)
        if method == "mean":
            p = np.tensordot(w, stack, axes=1)
        else:
            p = np.exp(np.tensordot(w, np.log(np.clip(stack, 1e-12, 1.0)), axes=1))
            p /= p.sum(axis=1, keepdims=True)
        out[cols] = p
    if age_upper is not None:
        out[AGE_UPPER] = age_upper
    return out


def write_ensemble(paths: list[Path], out: Path, weights=None, method: str = "mean") -> pd.DataFrame:
    io.check_apart(out, "--out", {f"input {p}": p for p in paths})
    df = ensemble(paths, weights, method)
    io.write_csv(out, df)
    return df

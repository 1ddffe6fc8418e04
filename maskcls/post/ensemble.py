"""Soft voting of prediction files of the same task(s): weighted arithmetic or geometric mean."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from maskcls import io
from maskcls.errors import MaskclsError
from maskcls.heads import HEADS
from maskcls.post.probs import align, heads_of, read_probs

METHODS = ("mean", "geometric")


def ensemble(paths: list[Path], weights: list[float] | None = None, method: str = "mean") -> pd.DataFrame:
    if method not in METHODS:
        raise MaskclsError(f"--method must be one of {', '.join(METHODS)} (got {method!r})")
    weights = weights or [1.0] * len(paths)
    if len(weights) != len(paths) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise MaskclsError(f"--weights needs {len(paths)} non-negative numbers with a positive sum (got {weights})")
    w = np.asarray(weights, dtype=np.float64) / sum(weights)
    frames = [read_probs(p) for p in paths]
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
    return out


def write_ensemble(paths: list[Path], out: Path, weights=None, method: str = "mean") -> pd.DataFrame:
    df = ensemble(paths, weights, method)
    io.write_csv(out, df)
    return df

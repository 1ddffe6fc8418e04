"""The statistics of bench/quality.py: its macro-F1 is scikit-learn's, and its paired bootstrap sees what it should."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from maskcls.config import ROOT

spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "bench" / "quality.py")
quality = importlib.util.module_from_spec(spec)
sys.modules["bench_quality"] = quality  # its dataclasses look their module up there
spec.loader.exec_module(quality)


def rows(seed: int, persons: int = 300, flip: float = 0.4, truth=None) -> pd.DataFrame:
    """Seven photos a person, hard answers: the truth, with a share `flip` of photos answered at random."""
    rng = np.random.default_rng(seed)
    people = np.repeat(np.arange(persons), 7)
    cls = truth if truth is not None else np.repeat(rng.integers(0, 18, persons), 7)
    wrong = rng.random(len(cls)) < flip
    pred = np.where(wrong, rng.integers(0, 18, len(cls)), cls)
    return pd.DataFrame({"path": [f"{p}/{i}.jpg" for i, p in enumerate(people)], "person": people.astype(str),
                         "class": cls, "mask": cls // 6, "gender": (cls // 3) % 2, "age": cls % 3,
                         "pred_class": pred})  # fmt: skip


def test_macro_f1_of_a_confusion_is_sklearns():
    t = rows(0)
    persons = np.sort(t["person"].unique())
    conf = quality.person_confusions(t, t["pred_class"].to_numpy(), persons).sum(0, keepdims=True)
    assert quality.macro_f1(conf)[0] == f1_score(t["class"], t["pred_class"], average="macro")


def test_paired_bootstrap_sees_a_real_gain_and_no_gain_on_the_same_answers():
    base = rows(1)
    same = quality.paired(base, base.copy(), boot=200)
    assert same["delta"] == 0 and same["lo"] == 0 and same["hi"] == 0
    better = rows(2, flip=0.2, truth=base["class"].to_numpy())  # half the errors: a large, real gain
    d = quality.paired(base, better, boot=500)
    assert d["delta"] > 0.1 and d["lo"] > 0 and d["lo"] < d["delta"] < d["hi"]
    noise = quality.paired(base, rows(3, flip=0.4, truth=base["class"].to_numpy()), boot=500)
    assert noise["lo"] < 0 < noise["hi"]  # another draw of the same error rate: no effect

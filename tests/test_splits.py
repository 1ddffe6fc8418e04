import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from maskcls.data import assign_folds, load_folds, save_folds, scan_train
from maskcls.data.splits import apply_folds


def _random_table(seed: int, persons: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(persons):
        g, a = rng.integers(2), rng.choice(3, p=[0.45, 0.4, 0.15])
        for m in [0] * 5 + [1, 2]:
            rows.append((f"{p:06d}", m * 6 + g * 3 + a))
    return pd.DataFrame(rows, columns=["person", "class"])


@settings(max_examples=25, deadline=None)
@example(seed=1, persons=20, folds=6, method="apart")  # CI found it: a peel took the last fold's persons
@given(seed=st.integers(0, 10_000), persons=st.integers(20, 120), folds=st.integers(2, 6),
       method=st.sampled_from(["sgkf", "apart"]))  # fmt: skip
def test_no_person_in_two_folds(seed, persons, folds, method):
    table = _random_table(seed, persons)
    f = assign_folds(table, folds=folds, seed=seed, method=method)
    assert f["person"].is_unique and set(f["person"]) == set(table["person"])
    assert set(f["fold"]) == set(range(folds))
    merged = apply_folds(table, f)
    assert (merged.groupby("person")["fold"].nunique() == 1).all()


@pytest.mark.parametrize("method,tolerance", [("sgkf", 0.06), ("apart", 0.08)])
def test_fold_label_mix_close_to_whole_and_seeded(demo_data, method, tolerance):
    t = scan_train(demo_data).table
    f = assign_folds(t, folds=5, seed=1, method=method)
    merged = apply_folds(t, f)
    whole = merged["class"].value_counts(normalize=True)
    for _, part in merged.groupby("fold"):
        share = part["class"].value_counts(normalize=True).reindex(whole.index, fill_value=0)
        assert (share - whole).abs().max() < tolerance
    assert f.equals(assign_folds(t, folds=5, seed=1, method=method))
    assert not f.equals(assign_folds(t, folds=5, seed=2, method=method))


def test_apart_split_is_the_same_in_every_process(tmp_path):
    """pandas-streaming walks sets of person names, whose order changes with PYTHONHASHSEED."""
    _random_table(7, 80).to_csv(tmp_path / "t.csv", index=False)
    code = ("import sys, pandas as pd; from maskcls.data import assign_folds; "
            f"t = pd.read_csv({str(tmp_path / 't.csv')!r}, dtype={{'person': str}}); "
            "assign_folds(t, folds=4, seed=3, method='apart').to_csv(sys.stdout, index=False)")  # fmt: skip
    outs = {subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONHASHSEED=str(h)),
                           capture_output=True, text=True, check=True).stdout for h in (1, 2, 3)}  # fmt: skip
    assert len(outs) == 1 and len(next(iter(outs)).splitlines()) == 81


def test_folds_file_round_trip(demo_data, tmp_path):
    t = scan_train(demo_data).table
    f = assign_folds(t, folds=4, seed=0)
    save_folds(f, tmp_path / "folds.csv")
    assert load_folds(tmp_path / "folds.csv").equals(f)

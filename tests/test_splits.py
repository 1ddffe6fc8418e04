import numpy as np
import pandas as pd
from hypothesis import given, settings
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
@given(seed=st.integers(0, 10_000), persons=st.integers(20, 120), folds=st.integers(2, 6))
def test_no_person_in_two_folds(seed, persons, folds):
    table = _random_table(seed, persons)
    f = assign_folds(table, folds=folds, seed=seed)
    assert f["person"].is_unique and set(f["person"]) == set(table["person"])
    assert set(f["fold"]) == set(range(folds))
    merged = apply_folds(table, f)
    assert (merged.groupby("person")["fold"].nunique() == 1).all()


def test_fold_label_mix_close_to_whole_and_seeded(demo_data):
    t = scan_train(demo_data).table
    f = assign_folds(t, folds=5, seed=1)
    merged = apply_folds(t, f)
    whole = merged["class"].value_counts(normalize=True)
    for _, part in merged.groupby("fold"):
        share = part["class"].value_counts(normalize=True).reindex(whole.index, fill_value=0)
        assert (share - whole).abs().max() < 0.06
    assert f.equals(assign_folds(t, folds=5, seed=1))
    assert not f.equals(assign_folds(t, folds=5, seed=2))


def test_folds_file_round_trip(demo_data, tmp_path):
    t = scan_train(demo_data).table
    f = assign_folds(t, folds=4, seed=0)
    save_folds(f, tmp_path / "folds.csv")
    assert load_folds(tmp_path / "folds.csv").equals(f)

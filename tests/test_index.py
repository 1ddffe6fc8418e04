import shutil

import pandas as pd
import pytest

from maskcls.data import scan_eval, scan_train
from maskcls.data.index import INDEX_COLUMNS
from tests.conftest import run_cli


def test_demo_index_has_one_row_per_image_and_reports_junk(demo_data):
    index = scan_train(demo_data)
    t = index.table
    assert list(t.columns) == INDEX_COLUMNS
    assert len(t) == 60 * 7 and t["person"].nunique() == 60
    assert set(t["mask"]) == {0, 1, 2} and (t.groupby("person").size() == 7).all()
    assert (t["class"] == t["mask"] * 6 + t["gender"] * 3 + t["age"]).all()
    reasons = dict(index.junk)
    assert ".ipynb_checkpoints" in reasons and ".DS_Store" in reasons
    assert sum("AppleDouble" in r for r in reasons.values()) == 2
    assert any(p.endswith("notes.txt") for p in reasons)
    assert index.csv_disagreements == []


def test_age_threshold_changes_groups_only_at_the_boundary(demo_data):
    t60 = scan_train(demo_data, age_upper=60).table
    t58 = scan_train(demo_data, age_upper=58).table
    moved = t60["age"] != t58["age"]
    assert set(t60.loc[moved, "age_years"]) <= {58, 59}


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_train_csv_disagreements_and_extension_case(demo_data, tmp_path):
    data = _copy(demo_data, tmp_path / "d")
    csv = pd.read_csv(data / "train" / "train.csv", dtype=str)
    csv.loc[0, "age"] = "99"
    csv = csv.iloc[:-1]
    csv.to_csv(data / "train" / "train.csv", index=False)
    folder = next(p for p in sorted((data / "train" / "images").iterdir()) if not p.name.startswith("."))
    (folder / "normal.jpg").rename(folder / "normal.JPG")
    index = scan_train(data)
    assert len(index.table) == 420  # the upper-case extension still counts
    text = "\n".join(index.csv_disagreements)
    assert "says age '99'" in text and "not listed in train.csv" in text


def test_malformed_person_folder_is_one_line_exit_2(demo_data, tmp_path, capsys):
    data = _copy(demo_data, tmp_path / "d")
    (data / "train" / "images" / "000777_robot_45").mkdir()
    code, _, err = run_cli(capsys, "eda", "--data", data)
    assert code == 2
    assert err.strip().count("\n") == 0 and "000777_robot_45" in err and "does not parse" in err
    assert "Traceback" not in err


def test_missing_info_csv_is_one_line_exit_2(demo_data, tmp_path, capsys):
    data = _copy(demo_data, tmp_path / "d")
    (data / "eval" / "info.csv").unlink()
    code, _, err = run_cli(capsys, "eda", "--data", data)
    assert code == 2 and "info.csv" in err and err.strip().count("\n") == 0


def test_missing_eval_image_and_unreadable_csv(demo_data, tmp_path):
    from maskcls.errors import MaskclsError

    data = _copy(demo_data, tmp_path / "d")
    first = pd.read_csv(data / "eval" / "info.csv")["ImageID"][0]
    (data / "eval" / "images" / first).unlink()
    with pytest.raises(MaskclsError, match=f"{first}: listed in .* but missing"):
        scan_eval(data)
    (data / "train" / "train.csv").write_bytes(b'id,gender\n\x00\xff\xfe\n"unclosed')
    with pytest.raises(MaskclsError, match="train.csv"):
        scan_train(data)


def test_missing_data_dir(tmp_path, capsys):
    code, _, err = run_cli(capsys, "eda", "--data", tmp_path / "nope")
    assert code == 2 and "train/images" in err


def test_eval_index_keeps_info_order(demo_data):
    ev = scan_eval(demo_data)
    info = pd.read_csv(demo_data / "eval" / "info.csv")
    assert ev.table["ImageID"].tolist() == info["ImageID"].tolist() and len(ev.table) == 140


def test_dev_set_index(dev_data):
    index = scan_train(dev_data)
    assert index.table["person"].nunique() == 600 and len(index.table) == 4200
    assert sum("AppleDouble" in r for _, r in index.junk) == 8
    assert ".ipynb_checkpoints" in dict(index.junk)
    assert index.csv_disagreements == []
    assert len(scan_eval(dev_data).table) == 1400

"""A team's day: crop a late test set alone, predict any photos, compare runs, read the pictures."""

import re
import shutil

import pandas as pd
import pytest

from tests.conftest import TINY, run_cli


def test_crop_works_on_an_eval_only_folder(demo_data, tmp_path, capsys):
    late = tmp_path / "late"
    shutil.copytree(demo_data / "eval", late / "eval")
    code, out, err = run_cli(capsys, "crop", "--data", late, "--out", tmp_path / "crops", "--size", "64", "48",
                             "--detectors", "center", "--workers", "1")  # fmt: skip
    assert code == 0, err
    info = pd.read_csv(late / "eval" / "info.csv")
    assert all((tmp_path / "crops" / "eval" / "images" / i).is_file() for i in info["ImageID"])
    assert (tmp_path / "crops" / "eval" / "info.csv").is_file() and not (tmp_path / "crops" / "train").exists()
    code, _, err = run_cli(capsys, "crop", "--data", tmp_path / "empty", "--out", tmp_path / "c2")
    assert code == 2 and "neither train/images/ nor eval/" in err


@pytest.mark.slow
def test_predict_any_photos_cropped_like_the_training_data(demo_data, tmp_path, capsys):
    code, _, err = run_cli(capsys, "crop", "--data", demo_data, "--out", tmp_path / "crops", "--size", "96", "72",
                           "--detectors", "haar,center", "--workers", "1")  # fmt: skip
    assert code == 0, err
    code, _, err = run_cli(capsys, "train-joint", "--data", tmp_path / "crops", "--out", tmp_path / "runs", *TINY,
                           "--epochs", "2")  # fmt: skip
    assert code == 0, err
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for i, p in enumerate(sorted((demo_data / "eval" / "images").glob("*.jpg"))[:5]):
        shutil.copy(p, photos / ("sub" if i % 2 else "") / f"p{i}.jpg")
    (photos / ".hidden.jpg").write_bytes(b"junk")
    run = tmp_path / "runs" / "joint-test_resnet"
    code, out, err = run_cli(capsys, "predict", run, "--images", photos, "--crop", "--out", tmp_path / "p.csv")
    assert code == 0, err
    df = pd.read_csv(tmp_path / "p.csv")
    assert sorted(df["ImageID"]) == ["p0.jpg", "p2.jpg", "p4.jpg", "sub/p1.jpg", "sub/p3.jpg"]
    assert {"mask_0", "pred_mask", "pred_gender", "pred_age", "pred_class"} <= set(df.columns)
    assert df["pred_class"].between(0, 17).all() and set(df["pred_mask"]) <= {"wear", "incorrect", "not_wear"}
    assert "cropped 5 photos" in out
    code, out, err = run_cli(capsys, "predict", run, "--images", str(photos / "*.jpg"), "--out", "-")
    assert code == 0, err
    assert "p0.jpg" in out and "p4.jpg" in out and "p1.jpg" not in out  # the glob's photos, as a table
    code, _, err = run_cli(capsys, "predict", run, "--images", photos, "--data", demo_data, "--out", "-")
    assert code == 2 and "one of them" in err


@pytest.mark.slow
def test_runs_table_curves_and_score_of_a_run(demo_data, tmp_path, capsys):
    from PIL import Image

    for lr in ("0.003", "0.0001"):
        code, _, err = run_cli(capsys, "train-joint", "--data", demo_data, "--out", tmp_path / "runs", *TINY,
                               "--epochs", "3", "--lr", lr, "--name", f"lr{lr}")  # fmt: skip
        assert code == 0, err
    code, _, err = run_cli(capsys, "train-age", "--data", demo_data, "--out", tmp_path / "runs" / "age", *TINY,
                           "--epochs", "1", "--age-head", "regression")  # fmt: skip
    assert code == 0, err
    code, out, err = run_cli(capsys, "runs", tmp_path / "runs", "--csv", tmp_path / "runs.csv")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "runs.csv")
    assert len(table) == 3 and set(table["task"]) == {"joint", "age"}
    joint = table[table["task"] == "joint"].set_index("run")
    best = joint["class_f1"].idxmax()
    assert joint.loc[best, "best"] and not joint.drop(best)["best"].any()  # one best per task
    assert table.loc[table["task"] == "age", "age_mae"].notna().all() and (table["epochs"] >= 1).all()
    assert "* " in out and "lr0.003" in out
    run = tmp_path / "runs" / "lr0.003"
    for png in (run / "curves.png", run / "fold0" / "curves.png", run / "fold0" / "confusion_class.png"):
        assert Image.open(png).size[0] > 600
    code, out, err = run_cli(capsys, "score", run)
    assert code == 0, err
    assert "per-class F1" in out and "local score: macro-F1" in out and (run / "score-f1.png").is_file()
    code, _, err = run_cli(capsys, "score", tmp_path / "runs" / "age" / "age-test_resnet")
    assert code == 2 and "18 classes need mask, gender and age" in err


def test_help_shows_resolved_defaults_and_only_the_flags_that_apply(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    helps = {}
    for cmd in ("train-mask", "train-age", "train-joint", "make-demo", "eda"):
        code, out, _ = run_cli(capsys, cmd, "--help")
        assert code == 0
        helps[cmd] = out
    assert "Peak learning rate (after warm-up). [default: 0.001]" in helps["train-mask"]
    assert '[default: "neighbor"]' in helps["train-age"]  # the age preset's loss, not args.json's

    def flag(name: str, text: str) -> bool:  # --head, not --head-dropout
        return re.search(rf"{name}(?![-\w])", text) is not None

    assert not flag("--head", helps["train-mask"]) and not flag("--external", helps["train-mask"])
    assert flag("--head", helps["train-age"]) and "--age-gate" in helps["train-joint"]
    assert "--age-gate" not in helps["train-age"]
    assert "Required (not with --resume)" in helps["train-mask"] and "Required (not" not in helps["eda"]
    assert "generated faces" in helps["make-demo"] and "augmentation and initialisation" not in helps["make-demo"]
    code, _, err = run_cli(capsys, "train-age", "--folds", "all", "--data", ".")
    assert code == 2 and "use --fold all" in err

"""ensemble, submit, pseudo-label and the pipeline script, on real files."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from maskcls.config import ROOT
from tests.conftest import random_probs, run_cli


@pytest.fixture
def preds(demo_data, tmp_path):
    ids = pd.read_csv(demo_data / "eval" / "info.csv")["ImageID"]
    a, b = random_probs(ids, 1), random_probs(ids, 2).sample(frac=1, random_state=0)  # b in another order
    a.to_csv(tmp_path / "fold0.csv", index=False)
    b.to_csv(tmp_path / "fold1.csv", index=False)
    return a, b.set_index("ImageID").loc[ids].reset_index()


def test_ensemble_rows_are_the_weighted_means(preds, tmp_path, capsys):
    a, b = preds
    code, _, err = run_cli(capsys, "ensemble", tmp_path / "fold0.csv", tmp_path / "fold1.csv", "--weights", "1,3",
                           "--out", tmp_path / "ens.csv")  # fmt: skip
    assert code == 0, err
    ens = pd.read_csv(tmp_path / "ens.csv")
    cols = [c for c in a.columns if c != "ImageID"]
    assert ens["ImageID"].tolist() == a["ImageID"].tolist()
    assert np.allclose(ens[cols].to_numpy(), 0.25 * a[cols].to_numpy() + 0.75 * b[cols].to_numpy())
    code, _, _ = run_cli(capsys, "ensemble", tmp_path / "fold0.csv", tmp_path / "fold1.csv", "--method", "geometric",
                         "--out", tmp_path / "geo.csv")  # fmt: skip
    geo = pd.read_csv(tmp_path / "geo.csv")
    expected = np.sqrt(a[["mask_0", "mask_1", "mask_2"]].to_numpy() * b[["mask_0", "mask_1", "mask_2"]].to_numpy())
    assert np.allclose(geo[["mask_0", "mask_1", "mask_2"]], expected / expected.sum(1, keepdims=True), atol=1e-6)


def test_submit_writes_a_valid_csv_in_info_order_and_scores_it(demo_data, preds, tmp_path, capsys):
    out = tmp_path / "subs"
    code, text, err = run_cli(capsys, "submit", "--joint", tmp_path / "fold0.csv", "--data", demo_data, "--out", out,
                              "--answers", demo_data / "eval_answers.csv")  # fmt: skip
    assert code == 0, err
    [sub_path] = list(out.glob("submission-*.csv"))
    sub = pd.read_csv(sub_path)
    info = pd.read_csv(demo_data / "eval" / "info.csv")
    assert sub["ImageID"].tolist() == info["ImageID"].tolist() and list(sub.columns) == ["ImageID", "ans"]
    a = preds[0]
    expected = (
        a[["mask_0", "mask_1", "mask_2"]].to_numpy().argmax(1) * 6
        + a[["gender_0", "gender_1"]].to_numpy().argmax(1) * 3
        + a[["age_0", "age_1", "age_2"]].to_numpy().argmax(1)
    )
    assert sub["ans"].tolist() == expected.tolist()
    assert "local score: macro-F1" in text and "predicted classes" in text
    assert "per-class F1" in text and "not_wear/female/>=60" in text  # the table of the 18 classes' F1
    assert sub_path.with_name(sub_path.stem + "-f1.png").is_file()  # and its bar chart, beside the submission


@pytest.mark.parametrize(
    "breakage,message",
    [
        ("other_ids", "ImageIDs do not match"),
        ("truncate", "truncated file"),
        ("bad_sum", "sum to"),
        ("missing_task", "has no age predictions"),
    ],
)
def test_bad_prediction_files_are_one_line_errors_and_write_nothing(
    demo_data, preds, tmp_path, capsys, breakage, message
):
    a = preds[0].copy()
    path = tmp_path / "bad.csv"
    if breakage == "other_ids":
        a.loc[0, "ImageID"] = "someone_else.jpg"
    if breakage == "bad_sum":
        a.loc[3, "mask_0"] += 0.5
    if breakage == "missing_task":
        a = a.drop(columns=["age_0", "age_1", "age_2"])
    a.to_csv(path, index=False)
    if breakage == "truncate":
        text = path.read_text()
        path.write_text(text[: len(text) // 2])
    out = tmp_path / "subs"
    code, _, err = run_cli(capsys, "submit", "--joint", path, "--data", demo_data, "--out", out)
    assert code == 2 and message in err and err.strip().count("\n") == 0
    assert not out.exists() or not any(out.iterdir())


def test_ensemble_rejects_mixed_tasks(preds, tmp_path, capsys):
    ids = preds[0]["ImageID"]
    random_probs(ids, 3, heads=(("age", 3),)).to_csv(tmp_path / "age.csv", index=False)
    code, _, err = run_cli(
        capsys, "ensemble", tmp_path / "fold0.csv", tmp_path / "age.csv", "--out", tmp_path / "x.csv"
    )
    assert code == 2 and "age.csv" in err and "differ" in err
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.slow
def test_pseudo_labels_train_and_never_validate(demo_data, preds, tmp_path, capsys):
    from maskcls import config
    from maskcls.data import assign_folds
    from maskcls.data.splits import apply_folds
    from maskcls.data.table import load_table
    from maskcls.engine.trainer import FoldTrainer

    code, text, err = run_cli(capsys, "pseudo-label", "--joint", tmp_path / "fold0.csv", "--data", demo_data,
                              "--threshold", "0.5", "--out", tmp_path / "pseudo.csv")  # fmt: skip
    assert code == 0, err
    pseudo = pd.read_csv(tmp_path / "pseudo.csv")
    assert 0 < len(pseudo) < 140
    cfg = config.resolve("joint", flags={"data": str(demo_data), "extra": str(tmp_path / "pseudo.csv"),
                                         "backbone": "test_resnet", "pretrained": False, "img_size": [64, 48],
                                         "workers": 0})  # fmt: skip
    table = load_table(cfg)
    real, extra = table[~table["pseudo"]], table[table["pseudo"]].assign(fold=-1)
    table = pd.concat([apply_folds(real, assign_folds(real, 5, 42)), extra], ignore_index=True)
    trainer = FoldTrainer(cfg, table, 0, tmp_path / "fold0", callbacks=[])
    assert set(pseudo["path"]) <= set(trainer.train_df["path"])
    assert not set(pseudo["path"]) & set(trainer.val_df["path"])
    # and through the CLI: the run's out-of-fold (validation) rows hold no eval image
    code, text, err = run_cli(
        capsys,
        "train-joint",
        "--data",
        demo_data,
        "--extra",
        tmp_path / "pseudo.csv",
        "--backbone",
        "test_resnet",
        "--no-pretrained",
        "--img-size",
        "64",
        "--epochs",
        "1",
        "--workers",
        "0",
        "--out",
        tmp_path / "runs",
        "--fold",
        "all",
        "--folds",
        "2",
    )
    assert code == 0, err
    assert "pseudo-labelled rows" in text
    oof = pd.read_csv(tmp_path / "runs" / "joint-test_resnet" / "oof.csv")
    assert len(oof) == 420 and not oof["path"].str.contains("/eval/").any()


@pytest.mark.slow
def test_pipeline_script_end_to_end_on_the_demo_set(demo_data, tmp_path):
    # DETECTORS as make demo sets it: the demo's faces are drawn, MTCNN finds few of them (see Makefile)
    env = dict(os.environ, BACKBONE="test_resnet", PRETRAINED="0", IMG_SIZE="96 72", CROP_SIZE="128 96", EPOCHS="10",
               BATCH_SIZE="16", LR="0.003", FOLDS="3", TRAIN_FOLDS="0", MASKCLS=f"{sys.executable} -m maskcls",
               EXTRA="", DETECTORS="haar,center")  # fmt: skip
    out = tmp_path / "out"
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "pipeline.sh"), str(demo_data), str(out), "--workers", "0"],
                          env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    [sub] = list((out / "submissions").glob("submission-*.csv"))
    sub = pd.read_csv(sub)
    assert len(sub) == 140 and sub["ans"].between(0, 17).all()
    import json

    score = json.loads((out / "score.json").read_text())
    assert score["class"]["f1"] > 0.3, score  # chance is about 0.06 for 18 classes
    assert (out / "crops" / "boxes.csv").is_file()
    for task in ("mask", "gender", "age"):  # FINAL=1: each task also fits every person, and joins the vote
        assert (out / "runs" / f"{task}-foldnone" / "fold-none" / "best.pt").is_file()

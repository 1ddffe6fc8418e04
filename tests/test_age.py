"""The age options: ordinal and regression heads, tuned cut-offs and biases, dropped boundary ages,
external faces, the gender-gated age head."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from maskcls import config
from maskcls.data.external import SOURCE_FACE, reframe, scan_external, target_framing
from maskcls.engine.kinds import AGES, Ordinal, Regression, build_heads
from maskcls.heads import HEADS
from maskcls.post.tune import tune, write_tuned
from tests.conftest import SMOKE, TINY, random_probs, run_cli
from tests.test_train import train

FIRST = int(AGES[0])


# -- the kinds, on their own ---------------------------------------------------------------------
def test_ordinal_targets_follow_corn_and_groups_come_from_the_cut_offs():
    kind = Ordinal(HEADS["age"], config.resolve("age", flags={"age_upper": 58}))
    t = kind.targets(torch.tensor([25, -1]))
    k25 = 25 - FIRST
    assert t[0, : k25 + 1].eq(1).all() and t[0, k25 + 1] == 0  # age >= a up to 25, then "not >= 26"
    assert torch.isnan(t[0, k25 + 2 :]).all()  # not trained beyond: CORN conditions on age >= a_{k-1}
    assert torch.isnan(t[1]).all()  # unknown age: trains nothing
    logits = torch.randn(4, kind.width)
    cum = kind.cumulative(logits)
    assert (cum[:, 1:] <= cum[:, :-1] + 1e-7).all()  # monotone by construction
    p = kind.probs(logits)
    assert torch.allclose(p.sum(1), torch.ones(4)) and (p >= 0).all()
    assert torch.allclose(p[:, 2], cum[:, 58 - FIRST])  # the oldest group starts at age_upper


def test_regression_probabilities_follow_the_predicted_age():
    kind = Regression(HEADS["age"], config.resolve("age"))
    years = torch.tensor([20.0, 45.0, 75.0])
    logits = ((years - 40) / 20).unsqueeze(1)
    assert torch.allclose(kind.years(logits), years)
    assert kind.probs(logits).argmax(1).tolist() == [0, 1, 2]
    assert kind.loss(logits, kind.targets(years.long())) == 0
    assert torch.isnan(kind.targets(torch.tensor([-1]))).all()


def test_unknown_labels_train_nothing_in_a_classify_head():
    kind = build_heads(config.resolve("joint"))["mask"]
    logits = torch.randn(3, 3)
    t = kind.targets(torch.tensor([0, -1, 2]))
    assert t[1].sum() == 0
    assert torch.allclose(kind.loss(logits, t), kind.loss(logits[[0, 2]], t[[0, 2]]))


# -- tune-thresholds on constructed out-of-fold predictions --------------------------------------
def _fake_run(tmp_path, name, df, age_upper=60):
    run = tmp_path / name
    run.mkdir()
    df.to_csv(run / "oof.csv", index=False)
    (run / "config.json").write_text(json.dumps({"age_upper": age_upper}))
    return run


def test_tuned_cut_offs_recover_a_known_shift_and_biases_favour_a_rare_class(tmp_path):
    rng = np.random.default_rng(0)
    ages = rng.integers(18, 75, 600)
    group = (ages >= 30).astype(int) + (ages >= 60)
    # a model that sees everyone 3 years older than they are: the best cut-offs are 33 and 63
    cum = (ages[:, None] + 3 >= AGES.numpy()[None, :]).astype(float)
    df = pd.DataFrame({"path": [f"p{i}" for i in range(600)], "age": group, "class": group})
    df = pd.concat([df, pd.DataFrame(cum, columns=[f"age_ge_{a}" for a in AGES.tolist()])], axis=1)
    for k in range(3):
        df[f"age_{k}"] = 1 / 3
    result = tune([_fake_run(tmp_path, "age", df)])
    assert result["choices"][str(tmp_path / "age")]["age"]["cutoffs"] == [33, 63]
    assert result["oof_f1_before"] < 0.9 and result["oof_f1_after"] == 1.0
    # a head that under-predicts its rare class: a positive bias on that class
    y = rng.integers(0, 2, 400)
    y[:40] = 2
    p = np.eye(3)[y] * 0.4 + 0.2  # rows sum to 1 (every reader of oof.csv checks it)
    p[:40] = [0.45, 0.2, 0.35]  # the rare class is always second
    gdf = pd.DataFrame({"path": [f"q{i}" for i in range(400)], "age": y, "class": y,
                        "age_0": p[:, 0], "age_1": p[:, 1], "age_2": p[:, 2]})  # fmt: skip
    run = _fake_run(tmp_path, "biased", gdf)
    result = tune([run])
    bias = result["choices"][str(run)]["age"]["bias"]
    assert bias[2] - bias[0] > 0.25 and result["oof_f1_after"] > result["oof_f1_before"] + 0.2
    write_tuned(result)
    assert json.loads((run / "tuned.json").read_text())["heads"]["age"]["bias"] == bias


# -- framing external faces ----------------------------------------------------------------------
def test_reframed_faces_have_the_training_images_framing(tmp_path):
    (tmp_path / "crop.json").write_text(json.dumps({"size": [256, 192], "margin": 0.2, "down_shift": 0.1}))
    size, face = target_framing(tmp_path)
    assert size == (256, 192) and face[0] == pytest.approx(1 / 1.4) and 0.4 < face[1] < 0.5
    assert target_framing(tmp_path / "nowhere")[1] == (0.62, 0.37)  # contest portraits
    # two marks at +-40% of the source face-box width, on the face centre's height
    img = np.zeros((200, 200, 3), np.uint8)
    fw, cy = SOURCE_FACE
    for x in (100 - 0.4 * fw * 200, 100 + 0.4 * fw * 200):
        img[int(cy * 200) - 3 : int(cy * 200) + 3, int(x) - 3 : int(x) + 3] = 255
    out = reframe(img, size, face)
    ys, xs = np.nonzero(out[:, :, 0] > 128)
    assert out.shape == (256, 192, 3)
    assert (xs.max() - xs.min()) / 192 == pytest.approx(0.8 * face[0], abs=0.04)  # the face width the crops have
    assert ys.mean() / 256 == pytest.approx(face[1], abs=0.02) and xs.mean() / 192 == pytest.approx(0.5, abs=0.02)


def _external_folder(demo_data, tmp_path, n=12):
    """Demo eval photos under UTKFace names: ages 61..72, alternating gender."""
    folder = tmp_path / "ext"
    folder.mkdir()
    for i, p in enumerate(sorted((demo_data / "eval" / "images").glob("*.jpg"))[:n]):
        shutil.copy(p, folder / f"{61 + i}_{i % 2}_0_2017010{i:02d}.jpg")
    (folder / "notes_without_age.jpg").write_bytes(b"")  # not UTKFace-named: not a face row
    return folder


def test_external_folder_and_csv_are_read(demo_data, tmp_path):
    folder = _external_folder(demo_data, tmp_path)
    rows = scan_external(folder, 60)
    assert len(rows) == 12 and (rows["mask"] == -1).all() and (rows["age"] == 2).all()
    assert rows["gender"].tolist()[:2] == [0, 1] and rows["age_years"].min() == 61
    csv = tmp_path / "ext.csv"
    pd.DataFrame({"path": [f"ext/{p.name}" for p in sorted(folder.glob("6*.jpg"))], "age": 25,
                  "gender": "female"}).to_csv(csv, index=False)  # fmt: skip
    rows = scan_external(csv, 60)
    assert (rows["age"] == 0).all() and (rows["gender"] == 1).all()


# -- each option trains on the demo set ----------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("head", ["ordinal", "regression"])
def test_age_head_kinds_train_report_mae_and_predict_groups(demo_data, tmp_path, capsys, head):
    run, out = train(capsys, tmp_path, demo_data, "age", "--head", head, "--epochs", "8")
    m = json.loads((run / "fold0" / "metrics.json").read_text())["metrics"]["age"]
    assert 0 < m["mae"] < 20 and m["f1"] > 0.4 and "MAE" in out
    assert json.loads((run / "config.json").read_text())["age_head"] == head
    oof = pd.read_csv(run / "oof.csv")
    assert f"age_ge_{FIRST}" in oof and np.allclose(oof[["age_0", "age_1", "age_2"]].sum(axis=1), 1, atol=1e-4)
    code, _, err = run_cli(capsys, "tune-thresholds", run)
    assert code == 0, err
    tuned = json.loads((run / "tuned.json").read_text())
    assert tuned["oof_f1_after"] >= tuned["oof_f1_before"] and len(tuned["heads"]["age"]["cutoffs"]) == 2
    preds = {}
    for flag in ("--tuned", "--no-tuned"):
        code, _, err = run_cli(capsys, "predict", run, "--data", demo_data, "--out", tmp_path / f"{flag}.csv", flag)
        assert code == 0, err
        preds[flag] = pd.read_csv(tmp_path / f"{flag}.csv")[["age_0", "age_1", "age_2"]].to_numpy()
    changed = tuned["heads"]["age"]["cutoffs"] != [30, 60] or any(tuned["heads"]["age"]["bias"])
    assert changed == (not np.allclose(preds["--tuned"], preds["--no-tuned"]))


@pytest.mark.slow
def test_external_faces_train_never_validate_and_dropped_ages_never_train(demo_data, tmp_path, capsys):
    from maskcls.data.table import load_table
    from maskcls.engine.trainer import FoldTrainer

    folder = _external_folder(demo_data, tmp_path)
    run, out = train(capsys, tmp_path, demo_data, "joint", "--external", folder, "--drop-ages", "27-29,57-59",
                     "--age-gate", "--epochs", "2")  # fmt: skip
    assert "external faces" in out and "--drop-ages 27-29,57-59" in out
    oof = pd.read_csv(run / "oof.csv")
    assert not oof["path"].str.contains("/external/").any()  # never validated
    assert oof["age_years"].isin([27, 28, 29, 57, 58, 59]).any()  # boundary ages still validate
    assert list((tmp_path / "runs" / "external").glob("*/*.jpg"))  # re-framed copies inside --out
    cfg = config.resolve("joint", flags={"data": str(demo_data), "external": str(folder), "out": str(tmp_path / "r"),
                                         "drop_ages": "27-29,57-59", "backbone": "test_resnet", "pretrained": False,
                                         "img_size": [64, 48], "workers": 0})  # fmt: skip
    table = load_table(cfg)
    real = table[~table["train_only"]]
    from maskcls.data import assign_folds
    from maskcls.data.splits import apply_folds

    table = pd.concat([apply_folds(real, assign_folds(real, 5, 42)), table[table["train_only"]].assign(fold=-1)])
    trainer = FoldTrainer(cfg, table, 0, tmp_path / "fold0", callbacks=[])
    assert trainer.train_df["external"].sum() == 12 and not trainer.val_df["external"].any()
    assert not trainer.train_df["age_years"].isin([27, 28, 29, 57, 58, 59]).any()
    assert trainer.val_df["age_years"].isin([27, 28, 29, 57, 58, 59]).any()
    assert trainer.model.gate is None  # joint config without --age-gate


@pytest.mark.slow
def test_gated_age_head_trains(demo_data, tmp_path, capsys):
    run, _ = train(capsys, tmp_path, demo_data, "joint", "--age-gate", "--epochs", "8")
    ckpt = torch.load(run / "fold0" / "best.pt", weights_only=True)
    assert "gate" in ckpt["model"] and ckpt["model"]["gate"].abs().sum() > 0  # it learnt
    m = json.loads((run / "fold0" / "metrics.json").read_text())["metrics"]
    assert m["age"]["f1"] > 0.4 and m["class"]["f1"] > 0.15


def test_age_options_refuse_bad_values(demo_data, tmp_path, capsys):
    empty = tmp_path / "no-faces"  # beside --out, not around it: an output may not lie inside an input
    empty.mkdir()
    for args, needle in [
        (["train-age", "--head", "linear"], "--head: train-age's head is one of classify, ordinal, regression"),
        (["train-age", "--drop-ages", "27-2"], "--drop-ages: '27-2' is not an age or a range"),
        (["train-mask", "--external", demo_data], "--external: applies to train-joint, train-gender, train-age only"),
        (["train-age", "--age-gate"], "--age-gate: applies to train-joint only"),
        (["train-joint", "--age-gate", "--head", "flat18"], "--age-gate conditions the age head on the gender head"),
        (["train-age", "--external", empty], "no face photos named"),
    ]:
        code, _, err = run_cli(capsys, *args, "--data", demo_data, "--out", tmp_path / "o", *TINY, "--epochs", "1")
        assert code == 2 and needle in err, err
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*/config.json"))


@pytest.mark.slow
def test_runs_of_two_age_thresholds_are_refused_together(demo_data, tmp_path, capsys):
    """A run is read one way (runs.Run); audit, tune-thresholds and predict share one agreement check."""
    from maskcls.runs import Run

    runs = []
    for upper in ("60", "58"):
        code, _, err = run_cli(capsys, "train-age", "--data", demo_data, "--out", tmp_path / "runs", *SMOKE,
                               "--age-upper", upper, "--name", f"age{upper}")  # fmt: skip
        assert code == 0, err
        runs.append(tmp_path / "runs" / f"age{upper}")
    assert Run(runs[1]).config.age_upper == 58 and Run(runs[1]).fold(0) == runs[1] / "fold0"
    assert Run.of_checkpoint(runs[1] / "fold0" / "best.pt").dir == runs[1]
    for args in (["audit", *runs], ["tune-thresholds", *runs], ["predict", *runs, "--data", demo_data, "--out",
                                                                   tmp_path / "p.csv"]):  # fmt: skip
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and "different age thresholds" in err and "58" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p.csv").exists() and not (runs[0] / "tuned.json").exists()
    # predictions record the threshold; ensemble, submit and pseudo-label read it instead of being told
    for run, upper in zip(runs, (60, 58), strict=True):
        code, _, err = run_cli(capsys, "predict", run, "--data", demo_data, "--out", tmp_path / f"p{upper}.csv")
        assert code == 0, err
        assert set(pd.read_csv(tmp_path / f"p{upper}.csv")["age_upper"]) == {upper}
    code, _, err = run_cli(capsys, "ensemble", tmp_path / "p60.csv", tmp_path / "p58.csv", "--out", tmp_path / "e.csv")
    assert code == 2 and "different age thresholds" in err and not (tmp_path / "e.csv").exists()
    ids = pd.read_csv(tmp_path / "p58.csv")["ImageID"]
    random_probs(ids, 0, (("mask", 3), ("gender", 2))).to_csv(tmp_path / "mg.csv", index=False)  # age_upper-free
    files = ["--mask", tmp_path / "mg.csv", "--gender", tmp_path / "mg.csv", "--age", tmp_path / "p58.csv"]
    code, out, err = run_cli(capsys, "submit", *files, "--data", demo_data, "--out", tmp_path / "subs")
    assert code == 0 and "30-57" in out and ">=58" in out, err  # the printed class names follow the file
    code, _, err = run_cli(capsys, "pseudo-label", *files, "--data", demo_data, "--threshold", "0.01",
                           "--out", tmp_path / "pseudo.csv")  # fmt: skip
    assert code == 0 and set(pd.read_csv(tmp_path / "pseudo.csv")["age_upper"]) == {58}, err
    code, _, err = run_cli(capsys, "submit", *files, "--data", demo_data, "--out", tmp_path / "s", "--age-upper", "60")
    assert code == 2 and "made with age_upper 58" in err
    # a config.json from before a key existed reads that key's default
    cfg = json.loads((runs[0] / "config.json").read_text())
    del cfg["ema"]
    (runs[0] / "config.json").write_text(json.dumps(cfg))
    assert Run(runs[0]).config.ema == config.defaults()["ema"]

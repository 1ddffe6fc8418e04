"""The training engine, for real: tiny timm backbones on the generated demo set, on CPU."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from maskcls import config
from maskcls.errors import MaskclsError
from maskcls.heads import HEADS
from tests.conftest import SMOKE, TINY, run_cli


def train(capsys, tmp_path, data, task, *extra):
    code, out, err = run_cli(capsys, f"train-{task}", "--data", data, "--out", tmp_path / "runs", *TINY, *extra)
    assert code == 0, err
    runs = sorted((tmp_path / "runs").glob("*/config.json"), key=lambda p: p.stat().st_mtime)
    return runs[-1].parent, out


@pytest.fixture(scope="module")
def joint_run(demo_data, tmp_path_factory):
    from maskcls.cli import main

    out = tmp_path_factory.mktemp("joint")
    assert main(["train-joint", "--data", str(demo_data), "--out", str(out), *TINY, "--epochs", "12"]) == 0
    return out / "joint-test_resnet"


@pytest.mark.slow
def test_joint_learns_all_three_tasks(joint_run):
    m = json.loads((joint_run / "fold0" / "metrics.json").read_text())["metrics"]
    # Chance is ~0.33 (mask), 0.5 (gender), 0.33 (age) and ~0.06 for the 18 classes.
    assert m["mask"]["f1"] > 0.7 and m["gender"]["f1"] > 0.7 and m["age"]["f1"] > 0.6
    assert m["class"]["f1"] > 0.35
    for name in ("config.json", "label_map.json", "folds.csv", "oof.csv", "summary.json"):
        assert (joint_run / name).is_file()
    for name in ("best.pt", "last.pt", "history.csv", "confusion_mask.png", "confusion_age.png"):
        assert (joint_run / "fold0" / name).is_file()
    # the leaderboard's view: the three heads combined into the 18 classes, legibly drawn
    from PIL import Image

    assert Image.open(joint_run / "fold0" / "confusion_class.png").size[0] > 800
    ckpt = torch.load(joint_run / "fold0" / "last.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "scaler", "epoch", "config", "label_map"} <= set(ckpt)
    assert ckpt["label_map"]["age"] == ["<30", "30-59", ">=60"] and ckpt["epoch"] == 11


@pytest.mark.slow
@pytest.mark.parametrize("task,bar", [("mask", 0.6), ("gender", 0.7), ("age", 0.55)])
def test_single_task_commands_learn(demo_data, tmp_path, capsys, task, bar):
    run, out = train(capsys, tmp_path, demo_data, task, "--epochs", "12")
    metrics = json.loads((run / "fold0" / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {task, "score"}
    assert metrics["best_score"] > bar, metrics
    oof = pd.read_csv(run / "oof.csv")
    cols = HEADS[task].columns()
    assert np.allclose(oof[cols].sum(axis=1), 1, atol=1e-4)
    assert "best epoch" in out


@pytest.mark.slow
def test_resume_after_sigkill_finishes_all_epochs_with_saved_optimizer(demo_data, tmp_path):
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "maskcls", "train-gender", "--data", str(demo_data), "--out", str(runs), *TINY,
           "--epochs", "5", "--name", "killed"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = runs / "killed" / "fold0" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not last.exists():
        time.sleep(0.2)
    time.sleep(0.5)  # now somewhere inside epoch 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = torch.load(last, weights_only=True)
    assert before["epoch"] < 4, "the run finished before it could be killed"
    from maskcls.cli import main

    assert main(["train-gender", "--resume", str(runs / "killed")]) == 0
    after = torch.load(last, weights_only=True)
    assert after["epoch"] == 4 and after["finished"]
    assert [r["epoch"] for r in after["history"]] == list(range(5))
    # Adam moments continued from the saved state: step count is the full run's.
    steps = next(iter(after["optimizer"]["state"].values()))["step"]
    first = next(iter(before["optimizer"]["state"].values()))["step"]
    assert float(steps) == pytest.approx(float(first) * 5 / (before["epoch"] + 1))


@pytest.mark.slow
def test_resume_extends_epochs_and_refuses_other_flags(demo_data, tmp_path, capsys):
    run, _ = train(capsys, tmp_path, demo_data, "age", "--epochs", "2", "--name", "short")
    code, _, err = run_cli(capsys, "train-age", "--resume", run, "--lr", "0.1")
    assert code == 2 and "--lr cannot change" in err and "--epochs" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "train-age", "--resume", run, "--epochs", "1")
    assert code == 2 and "already trained 2 epochs" in err
    code, _, err = run_cli(capsys, "train-age", "--resume", run, "--epochs", "3", "--set", "epochs=4")
    assert code == 2 and "--set epochs=... and its flag both given" in err  # as a new run refuses the pair
    code, out, err = run_cli(capsys, "train-age", "--resume", run, "--epochs", "3", "--workers", "0")
    assert code == 0, err
    history = pd.read_csv(run / "fold0" / "history.csv")
    assert history["epoch"].tolist() == [0, 1, 2] and json.loads((run / "config.json").read_text())["epochs"] == 3
    assert torch.load(run / "fold0" / "last.pt", weights_only=True)["finished"]


@pytest.mark.slow
def test_weights_from_a_local_maskcls_checkpoint_and_a_timm_state_dict(joint_run, demo_data, tmp_path):
    import timm

    from maskcls.models import build_model

    cfg = config.resolve("age", flags={"backbone": "test_resnet", "weights": str(joint_run / "fold0" / "best.pt")})
    model = build_model(cfg, {"age": 3})
    saved = torch.load(joint_run / "fold0" / "best.pt", weights_only=True)["model"]
    for k, v in model.state_dict().items():
        if k.startswith("backbone."):
            assert torch.equal(v, saved[k]), k
    assert torch.equal(model.state_dict()["heads.age.weight"], saved["heads.age.weight"])  # 3 classes: kept

    timm_file = tmp_path / "timm_test_resnet.pth"
    ref = timm.create_model("test_resnet", pretrained=False)
    torch.save(ref.state_dict(), timm_file)
    model = build_model(
        config.resolve("mask", flags={"backbone": "test_resnet", "weights": str(timm_file)}), {"mask": 3}
    )
    for k, v in ref.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(model.backbone.state_dict()[k], v), k

    with pytest.raises(MaskclsError, match="do not fit backbone resnet10t"):
        build_model(config.resolve("mask", flags={"backbone": "resnet10t", "weights": str(timm_file)}), {"mask": 3})


@pytest.mark.slow
def test_folds_all_trains_every_fold_with_disjoint_persons(demo_data, tmp_path, capsys):
    run, _ = train(capsys, tmp_path, demo_data, "mask", "--epochs", "1", "--folds", "3", "--fold", "all")
    assert sorted(p.name for p in run.glob("fold*") if p.is_dir()) == ["fold0", "fold1", "fold2"]
    oof = pd.read_csv(run / "oof.csv", dtype={"person": str})
    assert len(oof) == 420 and oof.groupby("person")["fold"].nunique().max() == 1
    assert len(json.loads((run / "summary.json").read_text())["scores"]) == 3


@pytest.mark.slow
def test_predict_probabilities_sum_to_one_per_task(joint_run, demo_data, tmp_path, capsys):
    out = tmp_path / "pred.csv"
    code, text, err = run_cli(capsys, "predict", joint_run, "--data", demo_data, "--out", out, "--tta")
    assert code == 0, err
    p = pd.read_csv(out)
    info = pd.read_csv(demo_data / "eval" / "info.csv")
    assert p["ImageID"].tolist() == info["ImageID"].tolist()
    for task, n in (("mask", 3), ("gender", 2), ("age", 3)):
        assert np.allclose(p[[f"{task}_{k}" for k in range(n)]].sum(axis=1), 1, atol=1e-4)


def test_config_precedence(tmp_path):
    base = config.defaults()
    age = config.resolve("age")
    assert age.loss == "neighbor" and age.optimizer == base.optimizer  # task preset over args.json
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"loss": "focal", "epochs": 3, "lr": 0.01}))
    cfg = config.resolve("age", f, {"epochs": 7, "lr": None})
    assert cfg.loss == "focal" and cfg.epochs == 7 and cfg.lr == 0.01  # file over preset, flags over file
    f.write_text(json.dumps({"epoch": 3}))
    with pytest.raises(MaskclsError, match="did you mean epochs"):
        config.resolve("age", f)
    with pytest.raises(MaskclsError, match="optimizer must be one of"):
        config.resolve("age", flags={"optimizer": "lion"})
    sets = {"decay_norm_bias": False, "split_method": "apart", "epochs": 4}
    cfg = config.resolve("age", None, {"lr": 0.5}, sets)
    assert (cfg.decay_norm_bias, cfg.split_method, cfg.epochs, cfg.lr) == (False, "apart", 4, 0.5)  # --set < flags


@pytest.mark.slow
def test_resolved_config_is_saved_in_run_dir(joint_run):
    saved = json.loads((joint_run / "config.json").read_text())
    assert saved["task"] == "joint" and saved["img_size"] == [96, 72] and saved["epochs"] == 12
    assert (joint_run / "folds.csv").read_text().startswith("person,fold")


def test_bad_input_is_one_line(demo_data, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train-age", "--data", demo_data, "--backbone", "resnet1B", "--out", tmp_path)
    assert code == 2 and "unknown backbone 'resnet1B'" in err and "resnet18" in err
    assert not list(tmp_path.glob("*/config.json")), "a failed start must leave no run directory"
    code, _, err = run_cli(capsys, "train-age", "--data", demo_data, *TINY, "--lr", "1000", "--optimizer", "sgd",
                           "--epochs", "1", "--out", tmp_path)  # fmt: skip
    assert code == 2 and "loss is" in err and "lower --lr" in err and "Traceback" not in err


@pytest.mark.slow
def test_wandb_offline_logs_the_resolved_config(demo_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run, _ = train(capsys, tmp_path, demo_data, "gender", "--epochs", "1", "--wandb")
    assert list((run / "fold0").rglob("*.wandb")), "no offline wandb run was written"


def test_wandb_is_not_imported_without_the_flag():
    code = "import sys, maskcls.cli, maskcls.engine.trainer, maskcls.post.predict; assert 'wandb' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_contest_recipe_preset_resolves_for_every_task():
    for task in ("mask", "gender", "age", "joint"):
        cfg = config.resolve(task, config.CONFIG_DIR / "contest-recipe.json")
        assert cfg.task == task and cfg.pretrained and cfg.backbone == "efficientnet_b4" and cfg.fold == "all"


def _wait_for(path, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline and not path.exists():
        time.sleep(0.1)
    assert path.exists(), f"{path} never appeared"


@pytest.mark.slow
def test_a_failing_or_interrupted_training_never_removes_a_neighbour_in_the_same_new_out(demo_data, tmp_path):
    """Two trainings into one new --out (a sweep): Ctrl-C on one, or one failing at its first step, leaves the
    other's run and the shared cache whole; the failed run's own folder is gone."""
    out = tmp_path / "sweep"
    base = [sys.executable, "-m", "maskcls", "train-joint", "--data", str(demo_data), "--out", str(out), *SMOKE]
    # 1. A (slow) is running when B finishes; then Ctrl-C on A
    slow = subprocess.Popen([*base, "--img-size", "256", "192", "--epochs", "3", "--batch-size", "4", "--name", "A"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    _wait_for(out / "A")
    done = subprocess.run([*base, "--name", "B"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert slow.poll() is None, "A finished before it could be interrupted"
    os.kill(slow.pid, signal.SIGINT)
    slow.wait(60)
    assert not (out / "A").exists()
    assert (out / "B" / "fold0" / "best.pt").is_file() and (out / "B" / "oof.csv").is_file()
    assert any((out / "cache").iterdir())
    # 2. C fails at its first step (a NaN loss) while D trains into a fresh --out: D finishes, its run intact
    out2 = tmp_path / "sweep2"
    base2 = [a if a != str(out) else str(out2) for a in base]
    trains = subprocess.Popen([*base2, "--epochs", "2", "--name", "D"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    _wait_for(out2 / "D")
    nan = subprocess.run([*base2, "--name", "C", "--set", 'loss_weights={"age": NaN}'], capture_output=True, text=True)
    assert nan.returncode == 2 and "nan" in nan.stderr.lower(), nan.stderr
    log, _ = trains.communicate(timeout=300)
    assert trains.returncode == 0, log
    assert not (out2 / "C").exists() and (out2 / "D" / "fold0" / "best.pt").is_file()

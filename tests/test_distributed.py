"""DistributedDataParallel on 2 CPU processes (gloo) through torchrun, against one process."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from maskcls.data.sampling import BalancedSampler, ShardSampler

pytestmark = pytest.mark.slow
ARGS = ["train-gender", "--backbone", "test_resnet", "--no-pretrained", "--img-size", "64", "48", "--batch-size", "16",
        "--epochs", "3", "--workers", "0", "--augment", "none", "--lr", "3e-3", "--seed", "5"]  # fmt: skip


def torchrun(n: int, *args) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", "-m", "maskcls"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=600)


def test_shards_of_each_global_batch_add_up_to_the_single_process_draw():
    labels = np.random.default_rng(0).integers(0, 3, 203)
    base = BalancedSampler(labels, 0.5, seed=3)
    base.set_epoch(2)
    single = list(base)
    shards = [list(ShardSampler(base, 16, r, 4, drop_last=True)) for r in range(4)]
    assert all(len(s) == 203 // 16 * 4 for s in shards)
    for k in range(203 // 16):  # global batch k = the four ranks' k-th local batches, in rank order
        assert sum((s[4 * k : 4 * k + 4] for s in shards), []) == single[16 * k : 16 * k + 16]


def test_ddp_on_two_processes_matches_one_process(demo_data, tmp_path):
    one = subprocess.run([sys.executable, "-m", "maskcls", *ARGS, "--data", demo_data, "--out", tmp_path / "one"],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert one.returncode == 0, one.stderr[-2000:]
    ddp = torchrun(2, *ARGS, "--data", demo_data, "--out", tmp_path / "ddp")
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    runs = [p for p in (tmp_path / "ddp").iterdir() if p.name != "cache"]
    assert [p.name for p in runs] == ["gender-test_resnet"]  # one run folder, written by rank 0 alone
    run = runs[0]
    assert sorted(p.name for p in run.glob("fold*/*.pt")) == ["best.pt", "last.pt"]
    oof1 = pd.read_csv(tmp_path / "one" / "gender-test_resnet" / "oof.csv")
    oof2 = pd.read_csv(run / "oof.csv")
    assert len(oof2) == len(oof1) == 84 and sorted(oof2["path"]) == sorted(oof1["path"])  # the whole fold
    h1 = pd.read_csv(tmp_path / "one" / "gender-test_resnet" / "fold0" / "history.csv")
    h2 = pd.read_csv(run / "fold0" / "history.csv")
    # Same global batches, same initialisation; what differs is batch-norm statistics per rank (8 images, not
    # 16) and float summation order. Tolerance: train loss within 0.05 per epoch, best F1 within 0.15.
    assert np.abs(h1["train_loss"] - h2["train_loss"]).max() < 0.05, (h1, h2)
    s1 = json.loads((tmp_path / "one" / "gender-test_resnet" / "summary.json").read_text())["mean_score"]
    s2 = json.loads((run / "summary.json").read_text())["mean_score"]
    assert abs(s1 - s2) < 0.15 and s2 > 0.6

    single = subprocess.run([sys.executable, "-m", "maskcls", "predict", run, "--data", demo_data, "--out",
                             tmp_path / "p1.csv", "--tta"], capture_output=True, text=True)  # fmt: skip
    assert single.returncode == 0, single.stderr[-2000:]
    sharded = torchrun(2, "predict", run, "--data", demo_data, "--out", tmp_path / "p2.csv", "--tta")
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    p1, p2 = pd.read_csv(tmp_path / "p1.csv"), pd.read_csv(tmp_path / "p2.csv")
    assert p2["ImageID"].tolist() == pd.read_csv(demo_data / "eval" / "info.csv")["ImageID"].tolist()
    cols = [c for c in p1.columns if c != "ImageID"]
    assert np.allclose(p1[cols], p2[cols], atol=1e-5)


def test_gpus_flag_relaunches_under_torchrun(demo_data, tmp_path):
    # with the winners' recipe on: EMA, gradient clipping and half-image CutMix on each rank's slice
    recipe = ["--ema", "0.9", "--clip-grad", "1", "--cutmix", "1", "--cutmix-mode", "halves",
              "--cutmix-partner", "rare"]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "maskcls", *ARGS, "--epochs", "1", "--gpus", "2", "--data", demo_data,
                           *recipe, "--out", tmp_path / "g"], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "DistributedDataParallel: 2 processes (gloo), global batch 16 = 2 x 8" in proc.stdout
    assert len(pd.read_csv(tmp_path / "g" / "gender-test_resnet" / "oof.csv")) == 84
    last = torch.load(tmp_path / "g" / "gender-test_resnet" / "fold0" / "last.pt", weights_only=True)
    assert "ema" in last and set(last["ema"]) == set(last["model"])


def test_gpu_bench_says_no_cuda_and_exits_0_on_a_cpu_machine():
    import torch

    from maskcls.config import ROOT

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: bench/gpu.sh would measure it")
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu.sh")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "no CUDA device" in proc.stdout


def test_ddp_resume_after_sigkill_finishes_every_epoch(demo_data, tmp_path):
    import os
    import signal
    import time

    import torch

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "maskcls",
           *ARGS, "--epochs", "6", "--data", str(demo_data), "--out", str(tmp_path), "--name", "killed"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    last = tmp_path / "killed" / "fold0" / "last.pt"
    deadline = time.time() + 300
    while time.time() < deadline and not last.exists():
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both ranks, mid-run
    proc.wait()
    assert torch.load(last, weights_only=True)["epoch"] < 5, "the run finished before it could be killed"
    resumed = torchrun(2, "train-gender", "--resume", tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = torch.load(last, weights_only=True)
    assert after["finished"] and [r["epoch"] for r in after["history"]] == list(range(6))

"""Trust under faults and hostile input (issue 14): each numbered item, reproduced and checked for real."""

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from maskcls import io
from maskcls.errors import MaskclsError
from tests.conftest import SMOKE, random_probs, run_cli, subset

pytestmark = pytest.mark.slow


class Evil:
    """Unpickling this creates a file: what a crafted checkpoint would do with os.system."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def one_line(err: str) -> bool:
    return err.strip().count("\n") == 0 and "Traceback" not in err


@pytest.fixture(scope="module")
def tiny_run(demo_data, tmp_path_factory) -> Path:
    from maskcls.cli import main

    out = tmp_path_factory.mktemp("trust")
    assert main(["train-gender", "--data", str(demo_data), "--out", str(out), *SMOKE, "--name", "g"]) == 0
    return out / "g"


# 1 ---------------------------------------------------------------------------------------------
def test_a_crafted_checkpoint_never_runs_code(tiny_run, demo_data, tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"model": Evil(marker), "config": {}, "heads": {}}, evil)
    code, _, err = run_cli(capsys, "predict", evil, "--data", demo_data, "--out", tmp_path / "p.csv")
    assert code == 2 and "refused to load" in err and "io.open" in err and one_line(err)
    code, _, err = run_cli(capsys, "train-age", "--data", demo_data, *SMOKE, "--weights", evil, "--out", tmp_path / "r")
    assert code == 2 and "refused to load" in err and one_line(err)
    run = tmp_path / "planted"
    shutil.copytree(tiny_run, run)
    shutil.copyfile(evil, run / "fold0" / "last.pt")
    code, _, err = run_cli(capsys, "train-gender", "--resume", run)
    assert code == 2 and "refused to load" in err and one_line(err)
    assert not marker.exists(), "unpickling ran code"
    assert not (tmp_path / "r").exists() and not (tmp_path / "p.csv").exists()


def test_checkpoints_are_plain_data_and_older_ones_still_load(tiny_run, demo_data, tmp_path, capsys):
    for name in ("best.pt", "last.pt"):
        torch.load(tiny_run / "fold0" / name, weights_only=True)  # no allowlist needed
    # A checkpoint as maskcls 0.1 wrote it: numpy RNG state and numpy floats inside.
    old = torch.load(tiny_run / "fold0" / "best.pt", weights_only=True)
    old["rng"] = {"numpy": np.random.get_state(), "python": __import__("random").getstate()}
    old["best_score"] = np.float64(old["best_score"])
    legacy = tmp_path / "legacy.pt"
    torch.save(old, legacy)
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(legacy, weights_only=True)
    loaded = io.torch_load(legacy)
    assert loaded["rng"]["numpy"][0] == "MT19937" and float(loaded["best_score"]) == float(old["best_score"])
    code, _, err = run_cli(capsys, "predict", legacy, "--data", demo_data, "--out", tmp_path / "p.csv")
    assert code == 0, err


# 2 ---------------------------------------------------------------------------------------------
FILL_AND_CHECK = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np
    from maskcls.data import scan_train
    from maskcls.data.cache import cached_source
    from maskcls.data.dataset import read_image
    paths = scan_train(sys.argv[1]).table["path"].tolist()
    open(sys.argv[3] + "." + str(os.getpid()), "w").close()  # ready: torch imported, data scanned
    while not os.path.exists(sys.argv[3]):  # both processes start filling at the same moment
        time.sleep(0.001)
    source = cached_source(sys.argv[2], (40, 30), paths)
    bad = [p for i, p in enumerate(paths) if not np.array_equal(source(i), read_image(p, (40, 30)))]
    print(len(paths), len(bad))
    """
)


def test_two_processes_fill_one_cache_from_two_data_sets_at_once(demo_data, tmp_path):
    from maskcls.demo import make_demo

    other = make_demo(tmp_path / "other", train_persons=60, eval_persons=0, seed=7)
    cache, go = tmp_path / "cache", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", FILL_AND_CHECK, str(d), str(cache), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for d in (demo_data, other)]  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.*"))) < 2 and time.monotonic() < deadline:  # both ready
        assert all(p.poll() is None for p in procs), "a filling process ended before it was ready"
        time.sleep(0.05)
    go.touch()
    results = [p.communicate(timeout=300) for p in procs]
    for (out, err), p in zip(results, procs, strict=True):
        assert p.returncode == 0, err[-2000:]
        n, bad = map(int, out.split()[-2:])
        assert n == 420 and bad == 0, f"{bad} of {n} images read back another image's pixels"
    index = pd.read_csv(cache / "40x30" / "index.csv")
    assert len(index) == 840 and index["slot"].is_unique


def test_a_cache_slot_with_foreign_pixels_is_an_error(demo_data, tmp_path):
    from maskcls.data import scan_train
    from maskcls.data.cache import cached_source

    paths = scan_train(demo_data).table["path"].tolist()[:10]
    source = cached_source(tmp_path / "cache", (40, 30), paths)
    data = tmp_path / "cache" / "40x30" / "images.u8"
    mm = np.memmap(data, dtype=np.uint8, mode="r+")
    mm[: 40 * 30 * 3] = 255 - mm[: 40 * 30 * 3]  # someone else wrote slot 0
    mm.flush()
    del mm
    source = cached_source(tmp_path / "cache", (40, 30), paths)  # index and file agree on slots, not pixels
    with pytest.raises(MaskclsError, match="holds other pixels"):
        source(0)
    assert source(1).shape == (40, 30, 3)


# 3, 4 ------------------------------------------------------------------------------------------
def test_two_identical_crop_runs_give_identical_boxes(dev_data, tmp_path, capsys):
    data = subset(dev_data, tmp_path, n_eval=70, n_persons=4)
    boxes = []
    for k in range(2):  # the default chain (mtcnn, haar, center), Haar in 4 threads
        out = tmp_path / f"crops{k}"
        code, _, err = run_cli(capsys, "crop", "--data", data, "--out", out, "--workers", "4")
        assert code == 0, err
        boxes.append(pd.read_csv(out / "boxes.csv"))
    assert (boxes[0]["detector"] != "center").mean() > 0.5  # real detections, not the centre fallback
    pd.testing.assert_frame_equal(boxes[0], boxes[1])


def test_crop_rerun_with_other_settings_is_refused_and_force_redoes_all(demo_data, tmp_path, capsys):
    data = subset(demo_data, tmp_path, n_eval=14, n_persons=2)
    out = tmp_path / "crops"
    assert run_cli(capsys, "crop", "--data", data, "--out", out, "--size", "64", "48")[0] == 0
    code, _, err = run_cli(capsys, "crop", "--data", data, "--out", out, "--size", "96", "72", "--margin", "0.3")
    assert code == 2 and "size [64, 48] -> [96, 72]" in err and "margin 0.2 -> 0.3" in err and "--force" in err
    code, text, err = run_cli(capsys, "crop", "--data", data, "--out", out, "--size", "96", "72", "--force")
    assert code == 0 and "28 to do" in text, err
    from PIL import Image

    sizes = {Image.open(p).size for p in out.glob("*/images/**/*.jpg")}
    assert sizes == {(72, 96)}
    code, text, _ = run_cli(capsys, "crop", "--data", data, "--out", out, "--size", "96", "72")
    assert code == 0 and "28 already cropped" in text


# 5 ---------------------------------------------------------------------------------------------
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def test_truncated_images_are_errors_in_train_and_predict_failed_in_crop_and_listed_by_eda(
    tiny_run, demo_data, tmp_path, capsys
):
    data = tmp_path / "d"
    shutil.copytree(demo_data, data)
    victim = sorted((data / "train" / "images").glob("*/normal.jpg"))[3]
    _truncate(victim)
    code, _, err = run_cli(capsys, "train-age", "--data", data, *SMOKE, "--out", tmp_path / "runs")
    assert code == 2 and str(victim) in err and "truncated JPEG" in err and one_line(err)
    runs = tmp_path / "runs"  # no run folder is left; only the image cache, which other runs may share
    assert not runs.exists() or [p.name for p in runs.iterdir()] == ["cache"]
    code, text, _ = run_cli(capsys, "eda", "--data", data)
    assert code == 0 and "unreadable or truncated" in text and victim.name in text
    code, text, _ = run_cli(capsys, "crop", "--data", data, "--out", tmp_path / "crops", "--size", "64", "48",
                            "--detectors", "haar,center")  # fmt: skip
    boxes = pd.read_csv(tmp_path / "crops" / "boxes.csv")
    assert boxes.loc[boxes["detector"] == "failed", "path"].str.contains(victim.parent.name).tolist() == [True]
    eval_victim = sorted((data / "eval" / "images").glob("*.jpg"))[0]
    _truncate(eval_victim)
    code, _, err = run_cli(capsys, "predict", tiny_run, "--data", data, "--out", tmp_path / "p.csv")
    assert code == 2 and eval_victim.name in err and "truncated" in err and one_line(err)


# 6 ---------------------------------------------------------------------------------------------
def test_paths_never_escape_the_folders_the_user_named(tiny_run, demo_data, tmp_path, capsys):
    data = tmp_path / "d"
    shutil.copytree(demo_data, data)
    info = pd.read_csv(data / "eval" / "info.csv")
    info.loc[0, "ImageID"] = "../../x.jpg"
    info.to_csv(data / "eval" / "info.csv", index=False)
    for args in (["crop", "--data", data, "--out", tmp_path / "c"],
                 ["predict", tiny_run, "--data", data, "--out", tmp_path / "p.csv"]):  # fmt: skip
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and "'../../x.jpg' is not a plain file name" in err and one_line(err)
    assert not (tmp_path / "x.jpg").exists() and not (tmp_path / "c").exists()
    code, _, err = run_cli(
        capsys, "train-age", "--data", demo_data, *SMOKE, "--name", "../../X", "--out", tmp_path / "o"
    )
    assert code == 2 and "--name" in err and not (tmp_path / "X").exists() and not (tmp_path / "o").exists()
    loose = tmp_path / "loose" / "model.pt"
    loose.parent.mkdir()
    shutil.copyfile(tiny_run / "fold0" / "best.pt", loose)
    before = set(tmp_path.rglob("*"))
    code, _, err = run_cli(capsys, "predict", loose, "--data", demo_data, "--out", tmp_path / "preds" / "p.csv")
    assert code == 0, err
    assert set(tmp_path.rglob("*")) - before == {tmp_path / "preds", tmp_path / "preds" / "p.csv"}


# 7 ---------------------------------------------------------------------------------------------
def test_joint_with_a_task_file_is_refused_and_negative_probabilities_are_named(demo_data, tmp_path, capsys):

    ids = pd.read_csv(demo_data / "eval" / "info.csv")["ImageID"]
    p = random_probs(ids, 0)
    p.to_csv(tmp_path / "j.csv", index=False)
    code, _, err = run_cli(capsys, "submit", "--joint", tmp_path / "j.csv", "--mask", tmp_path / "j.csv", "--data",
                           demo_data, "--out", tmp_path / "s")  # fmt: skip
    assert code == 2 and "--joint and --mask" in err and not (tmp_path / "s").exists()
    code, _, err = run_cli(capsys, "submit", "--mask", tmp_path / "j.csv", "--gender", tmp_path / "j.csv", "--age",
                           tmp_path / "j.csv", "--data", demo_data, "--out", tmp_path / "s")  # fmt: skip
    assert code == 0, err
    p.loc[2, ["mask_0", "mask_1"]] = [-0.2, p.loc[2, "mask_1"] + p.loc[2, "mask_0"] + 0.2]
    p.to_csv(tmp_path / "neg.csv", index=False)
    code, _, err = run_cli(capsys, "submit", "--joint", tmp_path / "neg.csv", "--data", demo_data, "--out", tmp_path)
    assert code == 2 and "negative value" in err and "row 4" in err and "sum to" not in err


# 8 ---------------------------------------------------------------------------------------------
def test_a_full_disk_is_named_as_such():
    with open("/dev/full", "wb", buffering=0) as f, pytest.raises(OSError) as e:
        f.write(b"x")
    assert str(io.write_error("runs/x/last.pt", e.value)) == "cannot write runs/x/last.pt: no space left on the device"


LIMITED = textwrap.dedent(
    """
    import resource, signal, sys, torch
    from maskcls import io
    from maskcls.errors import MaskclsError
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit: the write fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (3_000_000, 3_000_000))
    if sys.argv[1] == "save":
        io.torch_save(sys.argv[2], {"w": torch.zeros(10)})
        try:
            io.torch_save(sys.argv[2], {"w": torch.zeros(2_000_000)})
        except MaskclsError as e:
            print(e)
    else:
        from maskcls.cli import main
        sys.exit(main(sys.argv[2:]))
    """
)


def test_a_failed_write_names_the_path_keeps_the_old_file_and_leaves_no_temp(demo_data, tmp_path):
    target = tmp_path / "ckpt" / "last.pt"
    proc = subprocess.run([sys.executable, "-c", LIMITED, "save", str(target)], capture_output=True, text=True)
    assert f"cannot write {target}: file too large" in proc.stdout, proc.stderr
    assert torch.load(target, weights_only=True)["w"].shape == (10,)  # the last good file is intact
    assert [p.name for p in target.parent.iterdir()] == ["last.pt"]
    # A whole training run under the same limit: last.pt (4.5 MB) cannot be written.
    out = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-c", LIMITED, "cli", "train-gender", "--data", str(demo_data), *SMOKE,
                           "--no-cache", "--out", str(out), "--name", "g"], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"cannot write {out / 'g' / 'fold0' / 'last.pt'}: file too large" in proc.stderr
    assert not list(out.rglob("*.tmp"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_a_read_only_folder_is_named(demo_data, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    code, _, err = run_cli(capsys, "train-age", "--data", demo_data, *SMOKE, "--out", ro)
    assert code == 2 and "permission denied" in err and one_line(err)


def test_predict_and_submit_check_their_output_before_working_and_clean_stale_temps(
    tiny_run, demo_data, tmp_path, capsys
):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    t0 = time.time()
    code, _, err = run_cli(capsys, "predict", tiny_run, "--data", demo_data, "--out", blocker / "p.csv")
    assert code == 2 and f"cannot write {blocker / 'p.csv'}" in err and one_line(err)
    assert time.time() - t0 < 5  # refused before loading models and images
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    subs = tmp_path / "subs"
    subs.mkdir()
    stale = subs / f".submission-x.csv.{dead.pid}.k3j4h5.tmp"
    stale.write_text("ImageID,ans\n")

    random_probs(pd.read_csv(demo_data / "eval" / "info.csv")["ImageID"], 0).to_csv(tmp_path / "j.csv", index=False)
    code, _, err = run_cli(capsys, "submit", "--joint", tmp_path / "j.csv", "--data", demo_data, "--out", subs)
    assert code == 0, err
    assert not stale.exists() and len(list(subs.glob("submission-*.csv"))) == 1


# 9 ---------------------------------------------------------------------------------------------
def test_pretrained_offline_fails_fast_naming_weights(demo_data, tmp_path, capsys, monkeypatch):
    from maskcls import models

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = ["train-age", "--data", demo_data, *SMOKE, "--backbone", "resnet18", "--pretrained", "--out", tmp_path / "o"]
    t0 = time.time()
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "--weights FILE" in err and one_line(err) and time.time() - t0 < 20
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(models, "HUB_HOST", ("127.0.0.1", 9))  # a real connection attempt that is refused
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "cannot be reached" in err and "--weights FILE" in err and one_line(err)
    assert not (tmp_path / "o").exists()


def test_pseudo_label_csv_works_from_another_folder(demo_data, tmp_path, capsys, monkeypatch):
    from maskcls import config
    from maskcls.data.table import load_table

    random_probs(pd.read_csv(demo_data / "eval" / "info.csv")["ImageID"], 0).to_csv(tmp_path / "j.csv", index=False)
    monkeypatch.chdir(demo_data.parent)
    rel = Path(demo_data.name)
    code, _, err = run_cli(capsys, "pseudo-label", "--joint", tmp_path / "j.csv", "--data", rel, "--threshold", "0.3",
                           "--out", tmp_path / "pseudo.csv")  # fmt: skip
    assert code == 0, err
    assert pd.read_csv(tmp_path / "pseudo.csv")["path"].map(os.path.isabs).all()
    monkeypatch.chdir(tmp_path)
    cfg = config.resolve("joint", flags={"data": str(demo_data), "extra": str(tmp_path / "pseudo.csv")})
    table = load_table(cfg)
    assert table["pseudo"].sum() == len(pd.read_csv(tmp_path / "pseudo.csv")) > 0


# 10 --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", ["console script", "python -m"])
def test_exit_codes_reach_the_caller(entry, tmp_path):
    script = Path(sys.executable).parent / "maskcls"
    cmd = [str(script)] if entry == "console script" else [sys.executable, "-m", "maskcls"]
    if entry == "console script" and not script.exists():
        pytest.skip("console script not installed beside this python")
    proc = subprocess.run([*cmd, "eda", "--data", str(tmp_path / "missing")], capture_output=True, text=True)
    assert proc.returncode == 2 and "directory not found" in proc.stderr
    assert subprocess.run([*cmd, "--help"], capture_output=True).returncode == 0


# 11 --------------------------------------------------------------------------------------------
def test_failures_after_validation_leave_no_run_folder(demo_data, tmp_path, capsys):
    data = tmp_path / "d"
    shutil.copytree(demo_data, data)
    cases = [
        ["--weights", tmp_path / "nope.pt"],
        ["--weights", data / "eval" / "info.csv"],
        ["--folds", "61"],
    ]
    out = tmp_path / "runs"
    out.mkdir()
    for extra in cases:
        code, _, err = run_cli(capsys, "train-mask", "--data", data, *SMOKE, "--out", out, *extra)
        assert code == 2 and one_line(err), (extra, err)
        assert not any(out.iterdir()), (extra, list(out.iterdir()))
    bad = sorted((data / "train" / "images").glob("*/mask3.jpg"))[10]
    bad.write_bytes(b"not a jpeg at all")
    code, _, err = run_cli(capsys, "train-mask", "--data", data, *SMOKE, "--out", out)
    # Only the shared image cache (its completed entries, none of the failed fill) stays in --out.
    assert code == 2 and str(bad) in err and [p.name for p in out.iterdir()] == ["cache"]
    code, _, err = run_cli(capsys, "train-mask", "--data", demo_data, *SMOKE, "--out", out)
    assert code == 0 and sorted(p.name for p in out.iterdir()) == ["cache", "mask-test_resnet"], err

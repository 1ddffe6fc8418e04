"""What a hostile test battery broke, each case as it was reproduced: outputs over their own inputs,
writes outside the folder named, FIFOs that block, JPEGs cut short with an end marker appended."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from maskcls.data.dataset import _imdecode, read_image
from maskcls.errors import MaskclsError
from tests.conftest import SMOKE, TINY, run_cli, subset


def poisoned_jpeg(src, dst, keep: float = 0.5) -> None:
    """The first part of a real JPEG and an end-of-image marker: libjpeg decodes it, grey below the cut."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * keep)] + b"\xff\xd9")


@pytest.fixture()
def copy_of_demo(demo_data, tmp_path):
    dst = tmp_path / "data"
    shutil.copytree(demo_data, dst)
    return dst


# 1 -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["same", "slash", "absolute", "inside", "parent", "symlink"])
def test_crop_refuses_an_output_that_overlaps_its_input(copy_of_demo, tmp_path, capsys, where):
    before = {p: p.read_bytes() for p in copy_of_demo.rglob("*.jpg")}
    link = tmp_path / "link"
    link.symlink_to(copy_of_demo)
    out = {"same": str(copy_of_demo), "slash": f"{copy_of_demo}/", "absolute": str(copy_of_demo.resolve()),
           "inside": str(copy_of_demo / "crops"), "parent": str(tmp_path), "symlink": str(link)}[where]  # fmt: skip
    code, _, err = run_cli(capsys, "crop", "--data", copy_of_demo, "--out", out, "--detectors", "center")
    assert code == 2 and "write the output to a folder of its own" in err and len(err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in copy_of_demo.rglob("*.jpg")} == before  # not one photo touched
    assert not (copy_of_demo / "crops").exists() and not (copy_of_demo / "boxes.csv").exists()


# 2 -------------------------------------------------------------------------------------------------
def test_make_demo_refuses_a_folder_that_holds_a_data_set(copy_of_demo, capsys):
    csv_before = (copy_of_demo / "train" / "train.csv").read_text()
    persons = sorted(p.name for p in (copy_of_demo / "train" / "images").iterdir())
    code, _, err = run_cli(capsys, "make-demo", copy_of_demo, "--train-persons", "3", "--eval-persons", "1")
    assert code == 2 and "folder is not empty" in err and "--force" in err
    assert (copy_of_demo / "train" / "train.csv").read_text() == csv_before
    assert sorted(p.name for p in (copy_of_demo / "train" / "images").iterdir()) == persons
    # --force replaces the demo's own parts and keeps the rest
    (copy_of_demo / "notes.txt").write_text("mine\n")
    code, _, err = run_cli(capsys, "make-demo", copy_of_demo, "--train-persons", "3", "--eval-persons", "1", "--force")
    assert code == 0, err
    assert len(list((copy_of_demo / "train" / "images").glob("0*"))) == 3
    assert (copy_of_demo / "notes.txt").read_text() == "mine\n"


# 3 -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_predict_writes_only_its_out_file_and_follows_no_cache_link(demo_data, tmp_path, capsys):
    runs = tmp_path / "runs"
    code, _, err = run_cli(capsys, "train-gender", "--data", demo_data, "--out", runs, *TINY, "--epochs", "1",
                           "--img-size", "32", "--no-cache")  # fmt: skip
    assert code == 0, err
    outside = tmp_path / "outside"
    outside.mkdir()
    (runs / "cache").symlink_to(outside)  # as a run folder unpacked from a tarball might hold
    before = sorted(str(p) for p in runs.rglob("*"))
    code, _, err = run_cli(capsys, "predict", runs / "gender-test_resnet", "--data", demo_data,
                           "--out", tmp_path / "p.csv")  # fmt: skip
    assert code == 0, err
    assert list(outside.iterdir()) == [] and sorted(str(p) for p in runs.rglob("*")) == before
    assert len(pd.read_csv(tmp_path / "p.csv")) == len(pd.read_csv(demo_data / "eval" / "info.csv"))


# 4 -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_wandb_writes_nothing_outside_the_run(demo_data, tmp_path, capsys, monkeypatch):
    pytest.importorskip("wandb")
    home = tmp_path / "home"
    home.mkdir()
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "train-gender", "--data", demo_data, "--out", tmp_path / "runs", *TINY,
                           "--epochs", "1", "--img-size", "32", "--wandb")  # fmt: skip
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
        os.environ.pop(var, None)  # set by the callback for its own process; not for the next test
    assert code == 0, err
    assert list(home.rglob("*")) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "runs"]


# 5 -------------------------------------------------------------------------------------------------
def test_a_fifo_named_like_a_photo_is_skipped_not_read(copy_of_demo, tmp_path, capsys):
    person = sorted((copy_of_demo / "train" / "images").glob("0*"))[0]
    (person / "mask1.jpg").unlink()
    os.mkfifo(person / "mask1.jpg")
    code, out, err = run_cli(capsys, "eda", "--data", copy_of_demo)
    assert code == 0, err
    assert "mask1.jpg: not a regular file" in out
    with pytest.raises(MaskclsError, match="not a regular file"):
        read_image(str(person / "mask1.jpg"))
    from maskcls.post.predict import image_table

    table = image_table(person)
    assert "mask1.jpg" not in set(table["ImageID"]) and len(table) == 6
    assert "skipped 1 entries that are not regular files" in capsys.readouterr().err


# 6 and 12 ------------------------------------------------------------------------------------------
def test_a_jpeg_cut_short_with_an_end_marker_is_unreadable_everywhere(copy_of_demo, tmp_path, capsys):
    person = sorted((copy_of_demo / "train" / "images").glob("0*"))[3]
    real = person / "normal.jpg"
    shutil.copy(real, tmp_path / "whole.jpg")
    poisoned_jpeg(tmp_path / "whole.jpg", real)
    assert cv2.imread(str(real)) is not None  # OpenCV itself decodes it (grey below the cut), naming no file
    with pytest.raises(MaskclsError, match="corrupt JPEG"):
        read_image(str(real), (64, 48))
    # eda lists it, and an eval photo cut the same way (eda once never opened eval photos)
    info = pd.read_csv(copy_of_demo / "eval" / "info.csv")
    eval_photo = copy_of_demo / "eval" / "images" / info["ImageID"][0]
    poisoned_jpeg(tmp_path / "whole.jpg", eval_photo)
    code, out, err = run_cli(capsys, "eda", "--data", copy_of_demo)
    assert code == 0, err
    flat = out.replace("\n", "")
    assert f"unreadable or truncated image: {real}" in flat and f"unreadable or truncated image: {eval_photo}" in flat
    # crop records it as failed instead of writing a half-grey crop
    code, out, err = run_cli(capsys, "crop", "--data", copy_of_demo, "--out", tmp_path / "crops", "--detectors",
                             "center")  # fmt: skip
    assert code == 0, err
    boxes = pd.read_csv(tmp_path / "crops" / "boxes.csv")
    assert boxes.set_index("path").loc[f"train/images/{person.name}/normal.jpg", "detector"] == "failed"
    assert not (tmp_path / "crops" / "train" / "images" / person.name / "normal.jpg").exists()


def test_no_dev_photo_looks_poisoned_and_a_cut_one_does(dev_data):
    """The check's false positives on real photos: none of the first 700 dev photos is refused;
    the same photo cut in half is, at the training size's reduced decode too."""
    from maskcls.data import scan_train

    paths = [Path(p) for p in scan_train(dev_data).table["path"][:700]]
    for p in paths:
        assert read_image(str(p), (128, 96)).shape == (128, 96, 3)
    data = paths[0].read_bytes()
    with pytest.raises(MaskclsError, match="corrupt JPEG"):
        _imdecode(data[: len(data) // 2] + b"\xff\xd9", "cut.jpg", cv2.IMREAD_REDUCED_COLOR_4)


# 8 -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_joint(demo_data, tmp_path_factory):
    """A real joint run over 2 folds (1 epoch): its oof.csv holds every training image."""
    from maskcls.cli import main

    out = tmp_path_factory.mktemp("tiny")
    args = ["train-joint", "--data", str(demo_data), "--out", str(out), *TINY, "--epochs", "1", "--img-size", "32",
            "--fold", "all", "--folds", "2"]  # fmt: skip
    assert main(args) == 0
    return out / "joint-test_resnet"


@pytest.mark.slow
@pytest.mark.parametrize("value,problem", [("nan", "empty or missing value"), ("inf", "not finite"),
                                           ("1.5", "above 1"), ("x", "'x' is not a number")])  # fmt: skip
def test_every_reader_of_oof_refuses_a_bad_probability(tiny_joint, tmp_path, capsys, value, problem):
    run = tmp_path / "run"
    shutil.copytree(tiny_joint, run)
    oof = pd.read_csv(run / "oof.csv", dtype=str)
    oof.loc[4, "age_1"] = value
    oof.to_csv(run / "oof.csv", index=False)
    for cmd in (["score", run], ["tune-thresholds", run], ["audit", run, "--out", tmp_path / "audit"]):
        code, _, err = run_cli(capsys, *cmd)
        assert code == 2, (cmd[0], err)
        assert f"oof.csv: row 6 ({oof['path'][4]}), column age_1: {problem}" in err, (cmd[0], err)
    assert not (run / "tuned.json").exists() and not (tmp_path / "audit").exists()


# 11 ------------------------------------------------------------------------------------------------
def test_a_photo_replaced_with_its_size_and_mtime_kept_is_decoded_again(tmp_path):
    from maskcls.data.cache import cached_source

    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 255, (64, 48, 3), dtype=np.uint8) for _ in range(2))
    path = tmp_path / "face.png"  # stored, not deflated: two different photos of one size, byte for byte
    cv2.imwrite(str(path), a, [cv2.IMWRITE_PNG_COMPRESSION, 0])
    first = cached_source(tmp_path / "cache", (64, 48), [str(path)])(0)
    assert np.array_equal(first, a[..., ::-1])  # RGB
    st = path.stat()
    ok, buf = cv2.imencode(".png", b, [cv2.IMWRITE_PNG_COMPRESSION, 0])
    assert len(buf) == st.st_size
    path.write_bytes(buf.tobytes())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # what `cp -p` of another photo leaves
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    again = cached_source(tmp_path / "cache", (64, 48), [str(path)])(0)
    assert np.array_equal(again, b[..., ::-1])


# 13 ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_resume_under_another_task_is_refused(tiny_joint, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_joint, run)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run.rglob("*"))
    code, _, err = run_cli(capsys, "train-age", "--resume", run)
    assert code == 2 and "a joint run; continue it with train-joint, not train-age" in err
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run.rglob("*")) == before


# tracebacks ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_checkpoint_whose_heads_disagree_with_its_weights_is_a_line(tiny_joint, demo_data, tmp_path, capsys):
    import torch

    ckpt = torch.load(tiny_joint / "fold0" / "best.pt", weights_only=True)
    ckpt["heads"] = {**ckpt["heads"], "age": 5}  # the age layer's weights hold 3 rows
    torch.save(ckpt, tmp_path / "odd.pt")
    code, _, err = run_cli(capsys, "predict", tmp_path / "odd.pt", "--data", demo_data, "--out", tmp_path / "p.csv")
    assert code == 2 and "odd.pt: weights do not fit the model its config describes" in err
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.slow
def test_a_checkpoint_naming_what_no_registry_holds_is_a_line(tiny_joint, demo_data, tmp_path, capsys):
    """A checkpoint's config is not rechecked against today's registries when read (config.merge with
    registries=False); the unknown name fails where it is built, as one line, not a KeyError."""
    import torch

    ckpt = torch.load(tiny_joint / "fold0" / "best.pt", weights_only=True)
    ckpt["config"] = {**ckpt["config"], "age_head": "quantile"}  # a kind from another version, say
    torch.save(ckpt, tmp_path / "future.pt")
    code, _, err = run_cli(capsys, "predict", tmp_path / "future.pt", "--data", demo_data, "--out", tmp_path / "p.csv")
    assert code == 2 and "age_head 'quantile' is not one of classify, ordinal, regression" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "p.csv").exists()


@pytest.mark.slow
@pytest.mark.parametrize("metrics", ["", "[1, 2]", '{"fold": 0}', "{not json"])
def test_runs_skips_a_run_with_a_broken_metrics_file_and_shows_the_rest(tiny_joint, tmp_path, capsys, metrics):
    for name in ("good", "bad"):
        shutil.copytree(tiny_joint, tmp_path / "runs" / name)
    (tmp_path / "runs" / "bad" / "fold1" / "metrics.json").write_text(metrics)
    code, out, err = run_cli(capsys, "runs", tmp_path / "runs")
    assert code == 0, err
    assert "warning: skipped" in err and "bad" in err and "good" in out and "1 runs below" in out


# tuned.json is read like every probability table: malformed biases are one line, never applied ------------
@pytest.mark.slow
@pytest.mark.parametrize("bias,problem", [
    ('[NaN, 0, 0]', "finite"), ('[Infinity, -Infinity, 0]', "finite"), ('[1e308, 0, 0]', "within ±20"),
    ('[0.5]', "must be 3 numbers"), ('["x", 0, 0]', "must be 3 numbers"), (None, "'bias' list"),
])  # fmt: skip
def test_a_malformed_tuned_json_is_one_line_and_predicts_nothing(tiny_joint, demo_data, tmp_path, capsys, bias,
                                                                  problem):  # fmt: skip
    run = tmp_path / "run"
    shutil.copytree(tiny_joint, run)
    entry = '{"cutoffs": [30, 60]}' if bias is None else f'{{"bias": {bias}}}'
    (run / "tuned.json").write_text(f'{{"heads": {{"mask": {entry}}}}}')
    code, _, err = run_cli(capsys, "predict", run, "--data", demo_data, "--out", tmp_path / "p.csv")
    assert code == 2 and problem in err and "tuned.json: head 'mask'" in err, err
    assert err.strip().count("\n") == 0 and not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("chain", ["", ",", " , "])
def test_an_empty_detector_chain_is_refused(demo_data, tmp_path, capsys, chain):
    code, _, err = run_cli(capsys, "crop", "--data", demo_data, "--out", tmp_path / "c", "--detectors", chain)
    assert code == 2 and "--detectors: an empty chain finds no face" in err and not (tmp_path / "c").exists()


def test_plots_and_imports_write_nothing_under_home(demo_data, tmp_path):
    """matplotlib's font cache and settings go to a folder of the process's own (removed at exit), and
    albumentations' update check is off: a fresh $HOME stays empty after eda --plots."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MPLCONFIGDIR", "NO_ALBUMENTATIONS_UPDATE")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), XDG_CONFIG_HOME=str(home / ".config"))
    code = ("import os, maskcls, albumentations; print(os.environ['NO_ALBUMENTATIONS_UPDATE']); "
            "from maskcls.cli import main; "
            "raise SystemExit(main(['eda', '--data', os.environ['D'], '--plots', os.environ['P']]))")
    done = subprocess.run([sys.executable, "-c", code], env={**env, "D": str(demo_data), "P": str(tmp_path / "plots")},
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("1\n") and (tmp_path / "plots" / "samples.png").is_file()
    assert list(home.rglob("*")) == []


# no command's output may overlap any of its inputs (io.check_apart, one rule) ------------------------------
@pytest.mark.slow
def test_no_command_writes_over_or_into_its_inputs(tiny_joint, demo_data, tmp_path, capsys):
    data = subset(demo_data, tmp_path, n_eval=14, n_persons=4)
    other = subset(demo_data, tmp_path / "other", n_eval=7, n_persons=2)
    run = tmp_path / "runs" / "r"
    shutil.copytree(tiny_joint, run)
    preds = tmp_path / "p.csv"
    assert run_cli(capsys, "predict", run, "--data", data, "--out", preds)[0] == 0
    copy = tmp_path / "q.csv"
    shutil.copy(preds, copy)
    (tmp_path / "into").symlink_to(data / "train" / "images")
    cases = [
        (["predict", run, "--data", data, "--out", data / "eval" / "info.csv"], "lies inside --data"),
        (["predict", run, "--data", data, "--out", run / "oof.csv"], "lies inside run"),
        (["ensemble", preds, copy, "--out", preds], "is input"),
        (["pseudo-label", "--joint", preds, "--data", data, "--out", data / "train" / "train.csv"], "inside --data"),
        (["runs", tmp_path / "runs", "--csv", run / "oof.csv"], "lies inside run"),
        (["submit", "--joint", preds, "--data", data, "--out", data / "eval"], "lies inside --data"),
        (["crop", "--data", data, "--out", other, "--detectors", "center"], "holds a data set that is not crop output"),
        (["train-joint", "--data", data, *SMOKE, "--out", tmp_path / "into"], "lies inside --data"),
        (["cache", "--data", data, "--size", "32", "--cache-dir", tmp_path / "into" / "c"], "lies inside --data"),
    ]
    before = {p: p.read_bytes() for p in [*data.rglob("*.csv"), *other.rglob("*.csv"), preds, run / "oof.csv"]}
    listing = sorted(str(p) for p in [*data.rglob("*"), *other.rglob("*")])
    for args, needle in cases:
        code, _, err = run_cli(capsys, *args)
        assert code == 2 and needle in err, (args[0], err)
        assert err.strip().count("\n") == 0, err
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(str(p) for p in [*data.rglob("*"), *other.rglob("*")]) == listing


@pytest.mark.slow
@pytest.mark.parametrize("tamper,needle", [
    ("duplicate", "appears more than once"), ("contradict", "contradicts its mask, gender and age"),
    ("mask7", "column mask: '7' is not a mask label"), ("header", "no out-of-fold rows"),
])  # fmt: skip
def test_every_reader_of_oof_refuses_duplicates_contradictions_and_bad_labels(tiny_joint, tmp_path, capsys, tamper,
                                                                               needle):  # fmt: skip
    run = tmp_path / "run"
    shutil.copytree(tiny_joint, run)
    oof = pd.read_csv(run / "oof.csv", dtype=str)
    if tamper == "duplicate":
        oof = pd.concat([oof, oof.iloc[[3]]])
    elif tamper == "contradict":
        oof.loc[2, "class"] = str((int(oof.loc[2, "class"]) + 1) % 18)
    elif tamper == "mask7":
        oof.loc[2, "mask"] = "7"
    else:
        oof = oof.iloc[:0]
    oof.to_csv(run / "oof.csv", index=False)
    for cmd in (["score", run], ["tune-thresholds", run], ["audit", run, "--out", tmp_path / "audit"]):
        code, _, err = run_cli(capsys, *cmd)
        assert code == 2 and needle in err and "Traceback" not in err, (cmd[0], err)
    assert not (run / "tuned.json").exists() and not (tmp_path / "audit").exists()


def test_a_prediction_file_with_a_repeated_column_is_refused(demo_data, tmp_path, capsys):
    from tests.conftest import random_probs

    ids = pd.read_csv(demo_data / "eval" / "info.csv")["ImageID"]
    table = random_probs(ids, 0)
    table["age_upper"] = 60
    text = table.to_csv(index=False).splitlines()
    path = tmp_path / "p.csv"
    path.write_text("\n".join([text[0] + ",age_upper"] + [row + ",58" for row in text[1:]]) + "\n")
    for cmd in (["ensemble", path, path, "--out", tmp_path / "e.csv"], ["submit", "--joint", path, "--data", demo_data,
                                                                        "--out", tmp_path / "s"]):  # fmt: skip
        code, _, err = run_cli(capsys, *cmd)
        assert code == 2 and "column 'age_upper' appears 2 times" in err, err


@pytest.mark.slow
@pytest.mark.parametrize("key,value", [("age_upper", 58), ("lr", 0.5), ("head_dropout", 0.5)])
def test_resume_refuses_a_config_json_edited_after_training(demo_data, tmp_path, capsys, key, value):
    args = ["train-joint", "--data", demo_data, "--out", tmp_path, *SMOKE, "--name", "r"]
    assert run_cli(capsys, *args)[0] == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    config[key] = value
    (tmp_path / "r" / "config.json").write_text(json.dumps(config))
    code, _, err = run_cli(capsys, "train-joint", "--resume", tmp_path / "r", "--epochs", "2")
    assert code == 2 and f"config.json: {key} is {value!r}, but" in err and "trained with" in err, err


def test_small_oddities_that_were_tracebacks_are_answers_or_one_line(demo_data, tmp_path, capsys):
    from maskcls.detectors import build_detectors

    mtcnn = build_detectors(["mtcnn"])[0]  # an image under MTCNN's 12 px window holds no face it can find
    assert mtcnn.detect([np.zeros((8, 30, 3), np.uint8), np.zeros((11, 11, 3), np.uint8)]) == [[], []]
    code, _, err = run_cli(capsys, "config", "show", "--task", "joint", "--set", "wandb_project=../../../x")
    assert code == 2 and "wandb_project" in err and "plain folder name" in err, err
    pseudo = tmp_path / "pseudo.csv"
    image = next((demo_data / "eval" / "images").glob("*.jpg"))
    pseudo.write_text(f"ImageID,path,mask,gender,age,class,confidence,age_upper\n{image.name},{image},0,0,7,7,0.95,60\n")
    args = ["train-joint", "--data", demo_data, *SMOKE, "--out", tmp_path / "r", "--extra", pseudo]
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and "column age: '7' is not an age label" in err and not (tmp_path / "r").exists(), err


@pytest.mark.slow
def test_a_download_that_fails_creates_nothing_under_the_hub_folder(demo_data, tmp_path):
    """Offline --pretrained for a torchvision file that is not here, and RetinaFace without its weights: one
    line each, and torch hub's folder is not made (it is made only once a file has come)."""
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "torch"), "https_proxy": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}  # fmt: skip
    train = ["train-joint", "--data", str(demo_data), *map(str, SMOKE), "--backbone", "tv/resnet18", "--pretrained",
             "--out", str(tmp_path / "runs")]  # fmt: skip
    crop = ["crop", "--data", str(demo_data), "--out", str(tmp_path / "crops"), "--detectors", "retinaface,center"]
    cmds = [train, crop]
    for cmd in cmds:
        done = subprocess.run([sys.executable, "-m", "maskcls", *cmd], env=env, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 2 and ("cannot be downloaded" in done.stderr or "cannot download" in done.stderr)
        assert done.stderr.strip().count("\n") == 0, done.stderr
    assert not (tmp_path / "torch").exists() and not (tmp_path / "runs").exists()


def test_crop_refuses_huge_photos_and_crop_records_of_absurd_size(tmp_path, capsys):
    """A 20000x20000 JPEG is refused from its header, never decoded; a crop.json asking for 60000x45000 crops
    (an edited record, or an export's sidecar) is one line before any photo is read."""
    from maskcls.crop import crop_images, crop_in_memory

    big = tmp_path / "big.jpg"
    ok, buf = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))
    data = bytearray(buf.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (20000).to_bytes(2, "big") * 2  # the frame header says 20000x20000
    big.write_bytes(bytes(data))
    record = {"size": [128, 96], "margin": 0.2, "down_shift": 0.0, "detectors": ["center"]}
    with pytest.raises(MaskclsError, match="over 50 megapixels"):
        crop_in_memory([str(big)], record)
    with pytest.raises(MaskclsError, match=r"crop size \[60000, 45000\] must be two sides in 16..1024"):
        crop_images([np.zeros((64, 64, 3), np.uint8)], {**record, "size": [60000, 45000]})


@pytest.mark.slow
def test_audit_draws_what_it_can_and_names_what_it_cannot(tiny_joint, tmp_path, capsys):
    """oof.csv paths that are gone or a FIFO: audit does not block, says how many photos it could not draw."""
    run = tmp_path / "run"
    shutil.copytree(tiny_joint, run)
    oof = pd.read_csv(run / "oof.csv", dtype=str)
    oof["path"] = [str(tmp_path / ("fifo" if i % 2 else "gone") / f"{i}.jpg") for i in range(len(oof))]
    (tmp_path / "fifo").mkdir()
    for p in oof["path"][1::2]:
        os.mkfifo(p)
    oof.to_csv(run / "oof.csv", index=False)
    code, out, err = run_cli(capsys, "audit", run, "--out", tmp_path / "audit")
    assert code == 0 and "photos could not be drawn" in out + err
    assert (tmp_path / "audit" / "suspects.png").is_file()


@pytest.mark.slow
def test_a_run_records_its_data_set_by_full_path(demo_data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(demo_data.parent)
    assert run_cli(capsys, "train-joint", "--data", demo_data.name, *SMOKE, "--out", tmp_path, "--name", "r")[0] == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["data"] == str(demo_data.resolve())


def test_grey_is_a_colour_and_a_cut_is_a_cut_however_late(demo_data, tmp_path):
    """A valid JPEG whose bottom rows (or whole frame) are flat (128, 128, 128) is read; a JPEG cut inside its
    last row of blocks, an end marker appended, is refused though its last pixel row is not all grey."""
    photo = cv2.imread(str(next((demo_data / "train" / "images").glob("0*/normal.jpg"))))
    grey_edge = photo.copy()
    grey_edge[-16:] = 128
    for name, img in (("edge.jpg", grey_edge), ("wall.jpg", np.full_like(photo, 128))):
        cv2.imwrite(str(tmp_path / name), img)
        assert read_image(str(tmp_path / name)).shape == photo.shape
    data = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    late = tmp_path / "late.jpg"
    late.write_bytes(data[: int(len(data) * 0.985)] + b"\xff\xd9")
    img = cv2.imread(str(late))
    assert img is not None and not (img[-1] == 128).all()  # what the last-row rule could not see
    for size in (None, (256, 192), (64, 48)):  # full, and at 1/2 and 1/8 DCT scale (eda's look)
        with pytest.raises(MaskclsError, match="corrupt JPEG"):
            read_image(str(late), size)


def test_a_crop_reading_anothers_fresh_empty_boxes_csv_starts_from_nothing(tmp_path):
    """Two crops into one --out: one may read the other's boxes.csv before a byte of it is written."""
    from maskcls.crop import load_done

    (tmp_path / "boxes.csv").write_text("")
    assert load_done(tmp_path / "boxes.csv", tmp_path) == {}

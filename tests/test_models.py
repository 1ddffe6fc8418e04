"""Every timm family trains: heads sized from what the backbone returns, one forward and backward each."""

import pytest
import torch

from maskcls import config
from maskcls.engine.kinds import build_heads, widths
from maskcls.errors import MaskclsError
from maskcls.models import build_model

# ResNet, EfficientNet, MobileNetV3 and GhostNet (their pooled width is head_hidden_size, not
# num_features), ConvNeXt, and a small ViT (fixed input size: told the training size).
FAMILIES = ["resnet10t", "test_efficientnet", "mobilenetv3_small_050", "ghostnet_050", "test_convnext", "test_vit"]


@pytest.mark.parametrize("backbone", FAMILIES)
def test_every_family_trains_one_step(backbone):
    cfg = config.resolve("joint", flags={"backbone": backbone, "pretrained": False, "img_size": [64, 48]})
    kinds = build_heads(cfg)
    model = build_model(cfg, widths(kinds)).train()
    x = torch.randint(0, 255, (4, 3, 64, 48), dtype=torch.uint8)
    y = torch.tensor([[0, 1, 2], [1, 0, 0], [2, 1, 1], [0, 0, 2]])
    out = model(x)
    assert {h: o.shape for h, o in out.items()} == {"mask": (4, 3), "gender": (4, 2), "age": (4, 3)}
    loss = sum(k.loss(out[h], k.targets(y[:, i])) for i, (h, k) in enumerate(kinds.items()))
    loss.backward()
    assert torch.isfinite(loss) and model.heads["age"].weight.grad.abs().sum() > 0


def test_a_size_the_backbone_cannot_take_is_one_line():
    cfg = config.resolve(
        "age", flags={"backbone": "test_vit", "pretrained": False, "img_size": [60, 45]}
    )  # not a multiple of its patch
    with pytest.raises(MaskclsError, match="--img-size"):
        build_model(cfg, {"age": 3})

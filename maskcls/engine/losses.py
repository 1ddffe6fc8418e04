"""Losses on soft targets, so label smoothing, neighbor smoothing and MixUp/CutMix compose.

A loss preset is (criterion, smoothing): targets are built first (one-hot, uniformly smoothed,
or neighbor-smoothed for the ordinal age head), mixed if MixUp/CutMix is on, then scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from maskcls.data.sampling import neighbor_smoothing, uniform_smoothing

ORDINAL_HEADS = {"age"}  # heads whose classes are ordered, where neighbor smoothing makes sense


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, gamma: float = 0.0) -> torch.Tensor:
    return -(target * F.log_softmax(logits.float(), dim=1)).sum(1).mean()


def focal(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al.): down-weights easy examples by (1 - p)^gamma."""
    logp = F.log_softmax(logits.float(), dim=1)
    return -(target * (1 - logp.exp()) ** gamma * logp).sum(1).mean()


def soft_f1(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """1 - differentiable macro-F1 of the batch."""
    p = F.softmax(logits.float(), dim=1)
    tp = (p * target).sum(0)
    precision = tp / (p.sum(0) + eps)
    recall = tp / (target.sum(0) + eps)
    f1 = 2 * precision * recall / (precision + recall + eps)
    return 1 - f1.mean()


def f1_plus_ce(logits: torch.Tensor, target: torch.Tensor, gamma: float = 0.0) -> torch.Tensor:
    # F1 alone gives weak gradients early on; the sum is what the contest's top teams used.
    return cross_entropy(logits, target) + soft_f1(logits, target)


@dataclass(frozen=True)
class LossPreset:
    criterion: callable
    smoothing: str | None  # None, "uniform", or "neighbor" (ordinal heads; uniform on the others)


LOSSES = {
    "ce": LossPreset(cross_entropy, None),
    "smooth": LossPreset(cross_entropy, "uniform"),
    "neighbor": LossPreset(cross_entropy, "neighbor"),
    "focal": LossPreset(focal, None),
    "f1": LossPreset(f1_plus_ce, None),
}


def soft_targets(labels: torch.Tensor, head: str, num_classes: int, preset: LossPreset, eps: float) -> torch.Tensor:
    if preset.smoothing is None or eps == 0:
        return F.one_hot(labels, num_classes).float()
    if preset.smoothing == "neighbor" and head in ORDINAL_HEADS:
        return neighbor_smoothing(labels, eps, num_classes)
    return uniform_smoothing(labels, eps, num_classes)

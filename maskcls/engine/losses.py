"""Classification losses: objects built once from the config, owning their hyperparameters.

A loss makes its soft targets from integer labels (one-hot, uniformly smoothed, or
neighbor-smoothed on ordered classes), so MixUp/CutMix can mix them, then scores logits
against them. `LOSSES[cfg.loss](cfg, ordered)` builds one per head; `ordered` says the head's
classes have an order (age), where neighbor smoothing applies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from maskcls.registry import Registry


def uniform_smoothing(labels: torch.Tensor, eps: float, num_classes: int) -> torch.Tensor:
    """Standard label smoothing: eps spread over all classes."""
    t = torch.full((len(labels), num_classes), eps / num_classes, device=labels.device)
    t[torch.arange(len(labels)), labels] += 1.0 - eps
    return t


def neighbor_smoothing(labels: torch.Tensor, eps: float, num_classes: int = 3) -> torch.Tensor:
    """Soft targets for an ordinal label: eps goes only to the adjacent classes.

    <30 gives eps to 30-59; 30-59 splits eps between <30 and >=60; >=60 gives eps to 30-59.
    Never from <30 to >=60. Each row sums to 1.
    """
    n = num_classes
    kernel = torch.zeros(n, n)
    for c in range(n):
        neighbors = [d for d in (c - 1, c + 1) if 0 <= d < n]
        kernel[c, c] = 1.0 - eps if neighbors else 1.0
        for d in neighbors:
            kernel[c, d] = eps / len(neighbors)
    return kernel.to(labels.device)[labels]


class CrossEntropy:
    """Cross-entropy on soft targets; smoothing "uniform" or "neighbor" (ordered classes only)."""

    def __init__(self, smoothing: str | None = None, eps: float = 0.0):
        self.smoothing, self.eps = smoothing, eps

    def targets(self, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        if self.smoothing is None or self.eps == 0:
            return F.one_hot(labels, num_classes).float()
        if self.smoothing == "neighbor":
            return neighbor_smoothing(labels, self.eps, num_classes)
        return uniform_smoothing(labels, self.eps, num_classes)

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return known_mean(-(target * F.log_softmax(logits.float(), dim=1)).sum(1), target)


def known_mean(per_row: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows with a label: an all-zero target row (unknown label, e.g. an external face's
    mask) adds nothing; a row mixed with one keeps the weight of its known part."""
    known = target.sum(1) > 0
    return per_row[known].mean() if known.any() else per_row.sum() * 0.0


class Focal(CrossEntropy):
    """Focal loss (Lin et al.): down-weights easy examples by (1 - p)^gamma."""

    def __init__(self, gamma: float = 2.0):
        super().__init__()
        self.gamma = gamma

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=1)
        return known_mean(-(target * (1 - logp.exp()) ** self.gamma * logp).sum(1), target)


def soft_f1(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """1 - differentiable macro-F1 of the batch."""
    p = F.softmax(logits.float(), dim=1)
    tp = (p * target).sum(0)
    precision = tp / (p.sum(0) + eps)
    recall = tp / (target.sum(0) + eps)
    f1 = 2 * precision * recall / (precision + recall + eps)
    return 1 - f1.mean()


class F1PlusCE(CrossEntropy):
    """Soft macro-F1 + CE: F1 alone gives weak gradients early on; the sum is what top teams used."""

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        known = target.sum(1) > 0
        return super().__call__(logits, target) + soft_f1(logits[known], target[known])


# cfg.loss -> builder(cfg, ordered): the loss of one head (`ordered`: its classes have an order).
LOSSES = Registry("loss")


@LOSSES.register("ce")
def ce(cfg, ordered: bool) -> CrossEntropy:
    return CrossEntropy()


@LOSSES.register("smooth")
def smooth(cfg, ordered: bool) -> CrossEntropy:
    return CrossEntropy("uniform", cfg.label_smoothing)


@LOSSES.register("neighbor")
def neighbor(cfg, ordered: bool) -> CrossEntropy:
    """Smoothing into the adjacent classes of an ordered head (age), uniform on the others."""
    return CrossEntropy("neighbor" if ordered else "uniform", cfg.label_smoothing)


@LOSSES.register("focal")
def focal(cfg, ordered: bool) -> Focal:
    return Focal(cfg.focal_gamma)


@LOSSES.register("f1")
def f1(cfg, ordered: bool) -> F1PlusCE:
    return F1PlusCE()

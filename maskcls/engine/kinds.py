"""Head kinds: how a head learns from its labels and how its logits become class probabilities.

The engine only talks to this interface, so a new kind (ordinal, regression) is a class here
plus its name in `heads.KINDS`:
  width          logits the model's head outputs
  targets(y)     float training targets from the integer labels (MixUp/CutMix mix these)
  loss(logits, targets)
  probs(logits)  (N, classes) probabilities: what validation, predict, ensemble and submit consume
"""

from __future__ import annotations

import torch

from maskcls.engine.losses import LOSSES
from maskcls.heads import HEADS, Head, task_heads


class Classify:
    """One logit per class, softmax probabilities, trained by the configured loss (cfg.loss)."""

    def __init__(self, head: Head, cfg):
        self.head, self.num_classes, self.column = head, head.size(), head.name
        self.width = self.num_classes
        self.criterion = LOSSES[cfg.loss](cfg, head.ordered)

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        return self.criterion.targets(y, self.num_classes)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.criterion(logits, targets)

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().softmax(1)


KINDS = {"classify": Classify}


def build_heads(cfg) -> dict:
    """{head name: kind object} for the heads the config's task trains, in order."""
    return {name: KINDS["classify"](HEADS[name], cfg) for name in task_heads(cfg.task, cfg.head)}


def widths(kinds: dict) -> dict[str, int]:
    return {name: k.width for name, k in kinds.items()}

"""Head kinds: how a head learns from its labels and how its logits become class probabilities.

The engine only talks to this interface, so a new kind is a class here registered in KINDS
(the config's `age_head` choices are its keys):
  column         the index column it learns from (age group, or age in years)
  width          logits the model's head outputs
  targets(y)     float training targets from the integer labels (MixUp/CutMix mix these);
                 a label of -1 means unknown (an external face's mask, a pseudo row's exact age)
                 and gives a target that trains nothing
  loss(logits, targets)
  probs(logits)  (N, classes) probabilities: what validation, predict, ensemble and submit consume
and, for kinds that know years, cumulative(logits): (N, len(AGES)) P(age >= a), from which any
age cut-offs give group probabilities (`tune-thresholds` chooses them on out-of-fold rows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from maskcls import labels
from maskcls.engine.losses import LOSSES
from maskcls.heads import HEADS, Head, task_heads
from maskcls.registry import Registry

KINDS = Registry("age_head")  # how a head learns; the age head's is the setting age_head, the others classify

AGES = torch.arange(11, 91)  # ordinal thresholds "age >= a"; contest ages are 18..60, UTKFace's 1..116


@KINDS.register("classify")
class Classify:
    """One logit per class, softmax probabilities, trained by the configured loss (cfg.loss)."""

    def __init__(self, head: Head, cfg, cutoffs=None):
        self.head, self.num_classes, self.column = head, head.size(), head.name
        self.width = self.num_classes
        self.criterion = LOSSES[cfg.loss](cfg, head.ordered)

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        known = y >= 0
        t = self.criterion.targets(y.clamp(min=0), self.num_classes)
        return t * known.unsqueeze(1)  # an unknown label: an all-zero target, no weight in the loss

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.criterion(logits, targets)

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().softmax(1)


class Years:
    """Shared by the kinds that predict age in years: groups from P(age >= cut-off)."""

    def __init__(self, head: Head, cfg, cutoffs=None):
        if head.name != "age":
            raise ValueError(f"{type(self).__name__.lower()} is an age head kind, not one for {head.name}")
        self.head, self.num_classes, self.column = head, 3, "age_years"
        self.cutoffs = tuple(cutoffs or (labels.AGE_LOWER, cfg.age_upper))

    def cumulative(self, logits: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        return groups_from_cumulative(self.cumulative(logits), self.cutoffs)

    def years(self, logits: torch.Tensor) -> torch.Tensor:
        return expected_age(self.cumulative(logits))


@KINDS.register("ordinal")
class Ordinal(Years):
    """CORN (Shi et al. 2023): logit k is P(age >= a_k | age >= a_{k-1}); P(age >= a_k) is their product.

    Chosen over CORAL because the cumulative probabilities are monotone by construction with a
    plain linear layer (CORAL needs one weight vector shared by all thresholds to get there), so
    the model code is the same for every kind and group probabilities are never negative.
    """

    def __init__(self, head: Head, cfg, cutoffs=None):
        super().__init__(head, cfg, cutoffs)
        self.width = len(AGES)

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        """(N, K): 1 if age >= a_k, 0 if not, NaN where threshold k does not train on this row
        (CORN trains threshold k only on rows with age >= a_{k-1}; unknown ages train nothing)."""
        ages = AGES.to(y.device)
        t = (y.unsqueeze(1) >= ages).float()
        conditioned = torch.cat([torch.ones_like(t[:, :1], dtype=torch.bool), y.unsqueeze(1) >= ages[:-1]], 1)
        return t.masked_fill(~conditioned | (y < 0).unsqueeze(1), float("nan"))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        known = ~torch.isnan(targets)
        if not known.any():
            return logits.sum() * 0.0
        return F.binary_cross_entropy_with_logits(logits.float()[known], targets[known])

    def cumulative(self, logits: torch.Tensor) -> torch.Tensor:
        # the running product of the sigmoids, as exp(cumsum(log)): the same numbers, and an exportable graph
        # (ONNX has CumSum but no CumProd)
        return torch.exp(torch.cumsum(F.logsigmoid(logits.float()), dim=1))


@KINDS.register("regression")
class Regression(Years):
    """Age in years (one output, scaled (age - 40) / 20), trained with the Huber loss: robust to the
    noisy labels teams report. Its spread for group probabilities is a Laplace of SCALE years."""

    SCALE, DELTA = 5.0, 0.25  # Laplace scale (years); Huber delta (0.25 x 20 = 5 years)

    def __init__(self, head: Head, cfg, cutoffs=None):
        super().__init__(head, cfg, cutoffs)
        self.width = 1

    def targets(self, y: torch.Tensor) -> torch.Tensor:
        t = (y.float().unsqueeze(1) - 40) / 20
        return t.masked_fill((y < 0).unsqueeze(1), float("nan"))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        known = ~torch.isnan(targets)
        if not known.any():
            return logits.sum() * 0.0
        return F.huber_loss(logits.float()[known], targets[known], delta=self.DELTA)

    def years(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float()[:, 0] * 20 + 40

    def cumulative(self, logits: torch.Tensor) -> torch.Tensor:
        """P(age >= a) = P(true age > a - 0.5) under a Laplace around the predicted age."""
        z = (AGES.to(logits.device).float() - 0.5 - self.years(logits).unsqueeze(1)) / self.SCALE
        return torch.where(z < 0, 1 - 0.5 * torch.exp(z), 0.5 * torch.exp(-z))


def groups_from_cumulative(cum: torch.Tensor, cutoffs) -> torch.Tensor:
    """(N, 3) group probabilities from P(age >= a): <c1, c1..c2-1, >=c2."""
    lo, hi = (cum[:, int(c) - int(AGES[0])] for c in cutoffs)
    return torch.stack([1 - lo, lo - hi, hi], dim=1).clamp(min=0)


def expected_age(cum: torch.Tensor) -> torch.Tensor:
    """E[age] = sum over a >= 1 of P(age >= a), with P = 1 below the first threshold."""
    return (int(AGES[0]) - 1) + cum.sum(1)


def build_heads(cfg, cutoffs=None) -> dict:
    """{head name: kind object} for the heads the config's task trains, in order.

    The age head's kind is cfg.age_head; cutoffs (first age of the middle and the oldest group)
    override (30, age_upper) for the kinds that know years.
    """
    out = {}
    for name in task_heads(cfg.task, cfg.head):
        kind = cfg.age_head if name == "age" else "classify"
        out[name] = KINDS[kind](HEADS[name], cfg, cutoffs)
    return out


def widths(kinds: dict) -> dict[str, int]:
    return {name: k.width for name, k in kinds.items()}

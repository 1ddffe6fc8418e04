"""Optimizers and LR schedules from registries: a new one is an entry here, and the CLI accepts it.

OPTIMIZERS[name](param_groups, cfg) -> torch optimizer.
SCHEDULERS[name](cfg) -> f(progress, epoch): the LR multiplier after warm-up, where progress runs
0 -> 1 over the post-warm-up steps and epoch is the (fractional) epoch.
"""

from __future__ import annotations

import math
from functools import partial

import torch

from maskcls.registry import Registry

OPTIMIZERS = Registry("optimizer")


@OPTIMIZERS.register("adam")
def adam(groups: list[dict], cfg) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=cfg.lr)


@OPTIMIZERS.register("adamw")
def adamw(groups: list[dict], cfg) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=cfg.lr)


@OPTIMIZERS.register("sgd")
def sgd(groups: list[dict], cfg) -> torch.optim.Optimizer:
    # Nesterov needs momentum: `--set momentum=0` is plain SGD
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)


def param_groups(model: torch.nn.Module, weight_decay: float, decay_norm_bias: bool) -> list[dict]:
    """Trainable parameters with their weight decay.

    decay_norm_bias=False leaves biases, norm layers (every 1-d parameter) and the backbone's own
    `no_weight_decay()` names (a ViT's position embedding) undecayed, as timm's recipes do.
    """
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if decay_norm_bias or weight_decay == 0:
        return [{"params": [p for _, p in params], "weight_decay": weight_decay}]
    backbone = getattr(model, "backbone", None)
    skip = {f"backbone.{n}" for n in getattr(backbone, "no_weight_decay", lambda: ())()}
    plain = [p for n, p in params if p.ndim <= 1 or n in skip or n.endswith(".bias")]
    decay = [p for n, p in params if not (p.ndim <= 1 or n in skip or n.endswith(".bias"))]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    return OPTIMIZERS[cfg.optimizer](param_groups(model, cfg.weight_decay, cfg.decay_norm_bias), cfg)


def cosine(progress: float, epoch: float) -> float:
    return 0.5 * (1 + math.cos(math.pi * progress))


def step_decay(progress: float, epoch: float, gamma: float, step_size: int) -> float:
    return gamma ** int(epoch // step_size)


def exponential(progress: float, epoch: float, gamma: float) -> float:
    return gamma ** int(epoch)


def constant(progress: float, epoch: float) -> float:
    return 1.0


SCHEDULERS = Registry("scheduler")  # name -> f(cfg) -> the schedule with the config's own constants
SCHEDULERS.register("cosine")(lambda cfg: cosine)
SCHEDULERS.register("step")(lambda cfg: partial(step_decay, gamma=cfg.gamma, step_size=cfg.step_size))
SCHEDULERS.register("exponential")(lambda cfg: partial(exponential, gamma=cfg.exp_gamma))
SCHEDULERS.register("none")(lambda cfg: constant)


def build_ema(cfg, model: torch.nn.Module):
    """EMA of the weights (cfg.ema = decay; 0: None): timm's ModelEmaV3 with the decay warmed up over
    the first steps, since a short run would otherwise average in its random start."""
    if not cfg.ema:
        return None
    from timm.utils import ModelEmaV3  # timm.utils imports wandb when installed: only on request

    return ModelEmaV3(model, decay=cfg.ema, use_warmup=True, warmup_power=3 / 4)


def lr_factor(cfg, steps_per_epoch: int):
    """LR multiplier per optimizer step: linear warm-up over warmup_epochs, then the schedule."""
    total = cfg.epochs * steps_per_epoch
    warm = min(cfg.warmup_epochs * steps_per_epoch, total - 1)
    after = SCHEDULERS[cfg.scheduler](cfg)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return after((step - warm) / max(1, total - warm), step / steps_per_epoch)

    return factor

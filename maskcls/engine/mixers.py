"""Batch mixers: MixUp and CutMix as objects owning their alpha, on images and soft targets.

A mixer takes (x, targets, generator) and returns mixed images and targets; targets are the
per-head float tensors the head kinds make, so any head kind mixes the same way. `build_mixer`
turns the config's `mixup` / `cutmix` alphas into one object: each batch is left alone with
probability 1/2, else mixed by one of the enabled mixers, chosen at random.
"""

from __future__ import annotations

import math

import torch


class Mixer:
    """Pairs each image with a random other one of the batch; `mix` says how, and with what target weight."""

    def __init__(self, alpha: float):
        self.alpha = alpha

    def __call__(self, x: torch.Tensor, targets: dict, gen: torch.Generator):
        a = torch.tensor(float(self.alpha))
        lam = float(torch.distributions.Beta(a, a).sample())
        perm = torch.randperm(len(x), generator=gen).to(x.device)
        x, lam = self.mix(x.float(), perm, lam, gen)
        return x, mix_targets(targets, perm, lam)

    def mix(self, x: torch.Tensor, perm: torch.Tensor, lam: float, gen: torch.Generator):
        raise NotImplementedError


class MixUp(Mixer):
    def mix(self, x, perm, lam, gen):
        return lam * x + (1 - lam) * x[perm], lam


class CutMix(Mixer):
    """A box of another image pasted in; targets weighted by the area actually pasted."""

    def mix(self, x, perm, lam, gen):
        h, w = x.shape[2:]
        ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
        y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
        return x, 1 - (y1 - y0) * (x1 - x0) / (h * w)


def mix_targets(targets: dict, perm: torch.Tensor, lam: float) -> dict:
    return {k: lam * t + (1 - lam) * t[perm] for k, t in targets.items()}


class RandomMix:
    """With probability `p` one of the mixers (uniformly chosen) mixes the batch; else it passes through."""

    def __init__(self, mixers: list, p: float = 0.5):
        self.mixers, self.p = mixers, p

    def __call__(self, x: torch.Tensor, targets: dict, gen: torch.Generator):
        if torch.rand(1, generator=gen).item() < 1 - self.p:
            return x, targets
        mixer = self.mixers[int(torch.randint(len(self.mixers), (1,), generator=gen))]
        return mixer(x, targets, gen)


# config key -> mixer class; the key's value is the Beta alpha, 0 = off.
MIXERS = {"mixup": MixUp, "cutmix": CutMix}


def build_mixer(cfg) -> RandomMix | None:
    mixers = [cls(cfg[key]) for key, cls in MIXERS.items() if cfg[key] > 0]
    return RandomMix(mixers) if mixers else None

"""Batch mixers: MixUp, box CutMix and half-image CutMix as objects owning their settings.

A mixer takes (x, targets, generator, groups) and returns mixed images and targets; targets are
the per-head float tensors the head kinds make, so any head kind mixes the same way, by area.
Who each image is mixed with is the mixer's `partner` rule (PARTNERS): any image of the batch,
or one of the batch's rarest group (`groups`: the age group labels, see the trainer).
`build_mixer` turns the config into one object: each batch is left alone with probability 1/2,
else mixed by one of the enabled mixers, chosen at random.
"""

from __future__ import annotations

import math

import torch

from maskcls.registry import Registry

PARTNERS = Registry("cutmix_partner")  # who each image is mixed with
CUTMIX_MODES = Registry("cutmix_mode")  # which region of the partner is pasted


@PARTNERS.register("any")
def any_partner(groups: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random other image of the batch (a permutation)."""
    return torch.randperm(len(groups), generator=gen)


@PARTNERS.register("rare")
def rare_partner(groups: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """For every image, a partner drawn (with replacement) from the rarest group present in the batch.

    The contest's winners pasted halves of `>=60` faces, the rarest and worst-scored age group; in a
    batch the rarest group present is usually that one (ties go to the higher group: the older).
    """
    values, counts = groups.unique(return_counts=True)
    rarest = values[len(values) - 1 - int(counts.flip(0).argmin())]
    members = (groups == rarest).nonzero().flatten()
    return members[torch.randint(len(members), (len(groups),), generator=gen)]


# cfg.cutmix_partner -> f(groups, gen) -> partner index of each image
class Mixer:
    """Pairs each image with a partner; `mix` says how, and with what weight the image's own target stays."""

    def __init__(self, alpha: float, partner: str = "any"):
        self.alpha, self.partner = alpha, PARTNERS[partner]

    def __call__(self, x: torch.Tensor, targets: dict, gen: torch.Generator, groups: torch.Tensor | None = None):
        a = torch.tensor(float(self.alpha))
        lam = float(torch.distributions.Beta(a, a).sample())
        groups = groups if groups is not None else torch.zeros(len(x), dtype=torch.long)
        perm = self.partner(groups.cpu(), gen).to(x.device)
        x, lam = self.mix(x.float(), perm, lam, gen)
        return x, mix_targets(targets, perm, lam)

    def mix(self, x: torch.Tensor, perm: torch.Tensor, lam: float, gen: torch.Generator):
        raise NotImplementedError


class MixUp(Mixer):
    def mix(self, x, perm, lam, gen):
        return lam * x + (1 - lam) * x[perm], lam


@CUTMIX_MODES.register("box")
class CutMix(Mixer):
    """A box of the partner pasted in; targets weighted by the area actually pasted."""

    def mix(self, x, perm, lam, gen):
        h, w = x.shape[2:]
        ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
        y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
        return x, 1 - (y1 - y0) * (x1 - x0) / (h * w)


@CUTMIX_MODES.register("halves")
class Halves(CutMix):
    """The top entries' CutMix: the left or right half of the partner's face replaces the same half
    (lambda ~ 0.5, exactly the pasted area). A face is nearly symmetric, so the mixed image still
    looks like one face, unlike a random box. The alpha is not used."""

    sides = ("left", "right")

    def mix(self, x, perm, lam, gen):
        h, w = x.shape[2:]
        side = self.sides[int(torch.randint(len(self.sides), (1,), generator=gen))]
        rows, cols = {
            "left": (slice(0, h), slice(0, w // 2)),
            "right": (slice(0, h), slice(w // 2, w)),
            "top": (slice(0, h // 2), slice(0, w)),
            "bottom": (slice(h // 2, h), slice(0, w)),
        }[side]
        x[:, :, rows, cols] = x[perm][:, :, rows, cols]
        pasted = (rows.stop - rows.start) * (cols.stop - cols.start)
        return x, 1 - pasted / (h * w)


@CUTMIX_MODES.register("halves-tb")
class AllHalves(Halves):
    """Halves, also top/bottom (the lower half carries the mask, the upper the eyes and hair)."""

    sides = ("left", "right", "top", "bottom")


# cfg.cutmix_mode -> the CutMix class
def mix_targets(targets: dict, perm: torch.Tensor, lam: float) -> dict:
    return {k: lam * t + (1 - lam) * t[perm] for k, t in targets.items()}


class RandomMix:
    """With probability `p` one of the mixers (uniformly chosen) mixes the batch; else it passes through."""

    def __init__(self, mixers: list, p: float = 0.5):
        self.mixers, self.p = mixers, p

    def __call__(self, x: torch.Tensor, targets: dict, gen: torch.Generator, groups: torch.Tensor | None = None):
        if torch.rand(1, generator=gen).item() < 1 - self.p:
            return x, targets
        mixer = self.mixers[int(torch.randint(len(self.mixers), (1,), generator=gen))]
        return mixer(x, targets, gen, groups)


def build_mixer(cfg) -> RandomMix | None:
    """cfg.mixup and cfg.cutmix are Beta alphas (0 = off); cutmix_mode and cutmix_partner shape CutMix."""
    mixers = []
    if cfg.mixup > 0:
        mixers.append(MixUp(cfg.mixup))
    if cfg.cutmix > 0:
        mixers.append(CUTMIX_MODES[cfg.cutmix_mode](cfg.cutmix, cfg.cutmix_partner))
    return RandomMix(mixers) if mixers else None

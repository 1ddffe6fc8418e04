"""Augmentation presets (albumentations) on uint8 images already at the training size.

Normalisation is not here: the model normalises its uint8 input itself (see models.py), so
loaders move 4x fewer bytes and predict can never disagree with training about mean/std.
"""

from __future__ import annotations

import albumentations as A

PRESETS = {}


def register_preset(name: str):
    def wrap(fn):
        PRESETS[name] = fn
        return fn

    return wrap


@register_preset("none")
def _none(h: int, w: int) -> list:
    return []


@register_preset("light")
def _light(h: int, w: int) -> list:
    # Faces are roughly upright and centred: flips and small geometric jitter only.
    return [
        A.HorizontalFlip(p=0.5),
        A.Affine(scale=(0.92, 1.08), translate_percent=(-0.05, 0.05), rotate=(-8, 8), border_mode=1, p=0.7),
        A.RandomBrightnessContrast(0.15, 0.15, p=0.5),
    ]


@register_preset("medium")
def _medium(h: int, w: int) -> list:
    return [
        *_light(h, w),
        A.HueSaturationValue(10, 20, 10, p=0.3),
        A.GaussNoise(std_range=(0.02, 0.06), p=0.2),
        A.CoarseDropout(num_holes_range=(1, 2), hole_height_range=(0.1, 0.2), hole_width_range=(0.1, 0.2), p=0.2),
    ]


@register_preset("heavy")
def _heavy(h: int, w: int) -> list:
    return [
        A.RandomResizedCrop((h, w), scale=(0.7, 1.0), ratio=(0.65, 0.85), p=0.5),
        *_medium(h, w),
        A.ToGray(p=0.1),
        A.MotionBlur(p=0.1),
    ]


def build_augment(preset: str, img_size: tuple[int, int], seed: int | None = None) -> A.Compose | None:
    """The train-time augmentation of a preset, or None for 'none'."""
    ops = PRESETS[preset](*img_size)
    return A.Compose(ops, seed=seed) if ops else None

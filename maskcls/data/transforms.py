"""Augmentation presets (albumentations) on uint8 images already at the training size.

Normalisation is not here: the model normalises its uint8 input itself (see models.py), so
loaders move 4x fewer bytes and predict can never disagree with training about mean/std.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from maskcls.registry import Registry

PRESETS = Registry("augment")  # name -> f(h, w) -> the list of albumentations ops


@PRESETS.register("none")
def _none(h: int, w: int) -> list:
    return []


@PRESETS.register("light")
def _light(h: int, w: int) -> list:
    # Faces are roughly upright and centred: flips and small geometric jitter only.
    return [
        A.HorizontalFlip(p=0.5),
        A.Affine(scale=(0.92, 1.08), translate_percent=(-0.05, 0.05), rotate=(-8, 8), border_mode=1, p=0.7),
        A.RandomBrightnessContrast(0.15, 0.15, p=0.5),
    ]


@PRESETS.register("medium")
def _medium(h: int, w: int) -> list:
    return [
        *_light(h, w),
        A.HueSaturationValue(10, 20, 10, p=0.3),
        A.GaussNoise(std_range=(0.02, 0.06), p=0.2),
        A.CoarseDropout(num_holes_range=(1, 2), hole_height_range=(0.1, 0.2), hole_width_range=(0.1, 0.2), p=0.2),
    ]


@PRESETS.register("heavy")
def _heavy(h: int, w: int) -> list:
    return [
        A.RandomResizedCrop((h, w), scale=(0.7, 1.0), ratio=(0.65, 0.85), p=0.5),
        *_medium(h, w),
        A.ToGray(p=0.1),
        A.MotionBlur(p=0.1),
    ]


class MaskStyle(A.ImageOnlyTransform):
    """Gives the mask on a face crop another look: colour, darkness or a printed pattern.

    A mask head trained on a few mask styles learns their colours; faces in a style it never saw
    (a bandana, a print) are then missed. On a face crop (maskcls crop framing: the face fills the
    frame, the mouth at about 63% of its height) this takes the colour at the mouth; when it is far
    from the skin of the upper face, the pixels of that colour connected to the mouth are the mask,
    and they are repainted keeping their shading: a random hue, a dark or light fabric, stripes or
    checks. It only touches images whose label says a mask is on (`mask_on=True` passed with the
    image; the dataset does): on bare faces the colour test alone painted lips, beards and shadows
    on 6% of the dev set's `normal` photos, which would teach "masked" under a "not worn" label.
    """

    def __init__(self, distance: float = 30.0, p: float = 0.5):
        super().__init__(p=p)
        self.distance = distance

    def get_params(self) -> dict:
        rng = self.random_generator
        return {"style": int(rng.integers(4)), "hue": int(rng.integers(180)), "sat": float(rng.uniform(0.3, 1.0)),
                "value": float(rng.uniform(0.15, 0.95)), "period": int(rng.integers(3, 9)),
                "angle": int(rng.integers(4))}  # fmt: skip

    def get_params_dependent_on_data(self, params: dict, data: dict) -> dict:
        return {"mask_on": bool(data.get("mask_on", False))}

    def apply(self, img: np.ndarray, style: int = 0, hue: int = 0, sat: float = 0.5, value: float = 0.5,
              period: int = 6, angle: int = 0, mask_on: bool = False, **params) -> np.ndarray:  # fmt: skip
        if not mask_on:
            return img
        h, w = img.shape[:2]
        lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB).astype(np.float32)

        def patch(y0, y1, x0, x1):
            return np.median(lab[int(y0 * h) : int(y1 * h), int(x0 * w) : int(x1 * w)].reshape(-1, 3), axis=0)

        skin, mouth = patch(0.3, 0.42, 0.4, 0.6), patch(0.58, 0.68, 0.42, 0.58)
        if np.linalg.norm(mouth - skin) < self.distance:  # skin at the mouth: no mask (or one we cannot tell)
            return img
        near = (np.linalg.norm(lab - mouth, axis=2) < self.distance).astype(np.uint8)
        near[: int(0.4 * h)] = 0
        _, comp = cv2.connectedComponents(near)
        seeds = np.unique(comp[int(0.58 * h) : int(0.68 * h), int(0.42 * w) : int(0.58 * w)])
        mask = np.isin(comp, seeds[seeds > 0])
        box = (slice(int(0.4 * h), int(0.92 * h)), slice(int(0.1 * w), int(0.9 * w)))  # where a worn mask lies
        if mask[box].sum() < 0.8 * mask.sum():
            return img  # the colour runs on into the background or clothes: not a mask we can tell apart
        if mask[int(0.45 * h) : int(0.9 * h), int(0.25 * w) : int(0.75 * w)].mean() < 0.3:
            return img  # lips or a beard, not a mask: a bare face stays bare
        kept = np.zeros((h, w), np.float32)
        kept[box] = mask[box]
        weight = cv2.GaussianBlur(kept, (0, 0), max(h, w) / 120)[..., None]  # a soft edge
        weight[weight < 0.02] = 0  # the blur's far tail would still shift far pixels by a level
        shade = lab[..., :1] / 255.0  # the fabric's folds and shadows
        shade = shade - (shade * weight).sum() / max(weight.sum(), 1)
        if style == 0:  # another colour, its own shading
            colour = _hsv(hue, sat, np.clip(0.6 + shade, 0, 1))
        elif style == 1:  # dark or light fabric
            colour = np.repeat(np.clip(value + shade, 0, 1), 3, axis=2) * 255
        else:  # stripes (2) or checks (3) of two colours; `angle` tilts and doubles the stripes
            yy, xx = np.mgrid[0:h, 0:w]
            stripes = ((yy + xx * (angle % 2)) // period + (xx // period) * (angle // 2)) % 2
            if style == 3:
                stripes ^= (xx // period) % 2
            a = _hsv(hue, sat, np.clip(0.45 + shade, 0, 1))
            b = _hsv((hue + 90) % 180, sat * 0.5, np.clip(0.8 + shade, 0, 1))
            colour = np.where(stripes[..., None].astype(bool), a, b)
        out = img.astype(np.float32) * (1 - weight) + colour * weight
        return np.clip(out, 0, 255).astype(np.uint8)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("distance",)


def _hsv(hue: int, sat: float, value: np.ndarray) -> np.ndarray:
    """RGB float image of one hue and saturation with a per-pixel value in 0..1."""
    hsv = np.concatenate([np.full_like(value, hue), np.full_like(value, sat * 255), value * 255], axis=2)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)


@PRESETS.register("masks")
def _masks(h: int, w: int) -> list:
    """light + MaskStyle: for mask styles the training set does not show (measure it per style)."""
    return [*_light(h, w), MaskStyle(p=0.5)]


def build_augment(preset: str, img_size: tuple[int, int], seed: int | None = None) -> A.Compose | None:
    """The train-time augmentation of a preset, or None for 'none'."""
    ops = PRESETS[preset](*img_size)
    return A.Compose(ops, seed=seed) if ops else None

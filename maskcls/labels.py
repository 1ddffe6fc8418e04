"""The contest's label encodings, in one place.

class = mask * 6 + gender * 3 + age_group
  mask:   0 worn (mask1..mask5), 1 incorrect (incorrect_mask), 2 not worn (normal)
  gender: 0 male, 1 female
  age:    0 under 30, 1 from 30 to upper-1, 2 upper and over (upper defaults to 60)
"""

from __future__ import annotations

import numpy as np

NUM_CLASSES = 18
DEFAULT_AGE_UPPER = 60
AGE_LOWER = 30

STEM_TO_MASK = {
    "mask1": 0, "mask2": 0, "mask3": 0, "mask4": 0, "mask5": 0,
    "incorrect_mask": 1,
    "normal": 2,
}  # fmt: skip
GENDER_TO_CODE = {"male": 0, "female": 1}

MASK_NAMES = ("wear", "incorrect", "not_wear")
GENDER_NAMES = ("male", "female")


def age_names(upper: int = DEFAULT_AGE_UPPER) -> list[str]:
    return [f"<{AGE_LOWER}", f"{AGE_LOWER}-{upper - 1}", f">={upper}"]


def mask_from_stem(stem: str) -> int | None:
    """Mask code of a file stem, or None for a stem the contest does not use."""
    return STEM_TO_MASK.get(stem)


def gender_code(gender: str) -> int:
    try:
        return GENDER_TO_CODE[gender.strip().lower()]
    except KeyError:
        raise ValueError(f"gender {gender!r} is neither 'male' nor 'female'") from None


def age_group(age, upper: int = DEFAULT_AGE_UPPER):
    """Age in years -> 0 (<30), 1 (30..upper-1), 2 (>=upper). Works on ints and arrays."""
    if not upper > AGE_LOWER:
        raise ValueError(f"age threshold {upper} must be above {AGE_LOWER}")
    a = np.asarray(age)
    out = (a >= AGE_LOWER).astype(np.int64) + (a >= upper).astype(np.int64)
    return int(out) if out.ndim == 0 else out


def encode(mask, gender, age):
    """(mask, gender, age_group) codes -> 18-class label; scalars or arrays."""
    if _scalar(mask) and _scalar(gender) and _scalar(age):
        return int(mask) * 6 + int(gender) * 3 + int(age)
    return np.asarray(mask) * 6 + np.asarray(gender) * 3 + np.asarray(age)


def decode(label):
    """18-class label -> (mask, gender, age_group); scalars or arrays."""
    if _scalar(label):
        label = int(label)
        if not 0 <= label < NUM_CLASSES:
            raise ValueError(f"class {label} is outside 0..17")
        return label // 6, (label // 3) % 2, label % 3
    a = np.asarray(label)
    return a // 6, (a // 3) % 2, a % 3


def _scalar(x) -> bool:
    return np.ndim(x) == 0


MAX_AGE = 120  # an age above this (a folder name, --drop-ages) is a typo, not a person


def parse_ages(text: str | None) -> set[int]:
    """'27-29,57-59' -> {27, 28, 29, 57, 58, 59}; single ages too ('60'); None or '' -> empty."""
    if isinstance(text, list | tuple):  # a JSON config may list them: [27, 28, "57-59"]
        text = ",".join(map(str, text))
    ages: set[int] = set()
    for part in (text or "").replace(" ", "").split(","):
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        ends = [lo, hi] if dash else [lo]  # "27-" has a dash and no upper end: not an age
        # ASCII digits only: "²".isdigit() is True, int("²") fails
        if not all(e and e.isascii() and e.isdigit() for e in ends) or int(ends[-1]) < int(lo):
            raise ValueError(f"{part!r} is not an age or a range like 27-29")
        if int(ends[-1]) > MAX_AGE:
            raise ValueError(f"{part!r}: ages go up to {MAX_AGE}")
        ages.update(range(int(lo), int(ends[-1]) + 1))
    return ages

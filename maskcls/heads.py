"""The heads, declared once. Everything that names a head or its classes derives from here.

A head has a name (also the index column of its label and the prefix of its probability
columns, `age_0..age_2`) and class names (the age names follow `age_upper`: "30-57 / >=58" at
58). How a head learns and turns logits into probabilities is its kind (`engine/kinds.py`:
classify for every head; the age head can also be ordinal or regression, `age_head`). A task is
a list of heads.

Adding a head kind: a class registered in KINDS (engine/kinds.py) (the `age_head` choices are
that registry's keys; regression was exactly that). Adding a head: one entry in HEADS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from maskcls import labels

FACTORS = ("mask", "gender", "age")  # the three heads whose product is the 18 contest classes


@dataclass(frozen=True)
class Head:
    name: str
    fixed_classes: tuple[str, ...] = ()  # empty: derived from age_upper (the age head, the 18 classes)
    ordered: bool = False  # classes have an order (age): neighbor smoothing, ordinal kinds

    def classes(self, age_upper: int = labels.DEFAULT_AGE_UPPER) -> list[str]:
        if self.fixed_classes:
            return list(self.fixed_classes)
        if self.name == "age":
            return labels.age_names(age_upper)
        return class_names(age_upper)

    def size(self) -> int:
        return len(self.classes())

    def columns(self) -> list[str]:
        """Probability columns of a prediction CSV: <name>_0 .. <name>_{size-1}."""
        return [f"{self.name}_{k}" for k in range(self.size())]


HEADS: dict[str, Head] = {
    "mask": Head("mask", labels.MASK_NAMES),
    "gender": Head("gender", labels.GENDER_NAMES),
    "age": Head("age", ordered=True),
    "class": Head("class"),  # one 18-way head (train-joint --head flat18)
}

# The heads each train command builds; "joint/flat18" is train-joint --head flat18.
TASKS: dict[str, tuple[str, ...]] = {
    "mask": ("mask",),
    "gender": ("gender",),
    "age": ("age",),
    "joint": FACTORS,
    "joint/flat18": ("class",),
}


def class_names(age_upper: int = labels.DEFAULT_AGE_UPPER) -> list[str]:
    """The 18 contest classes in label order: class = mask*6 + gender*3 + age."""
    m, g, a = (HEADS[h].classes(age_upper) for h in FACTORS)
    return [f"{x}/{y}/{z}" for x in m for y in g for z in a]


def classes(head: str, age_upper: int = labels.DEFAULT_AGE_UPPER) -> list[str]:
    return HEADS[head].classes(age_upper)


def task_heads(task: str, head: str = "multi") -> tuple[str, ...]:
    """Head names a train command builds (joint with head=flat18: the one 18-way head)."""
    return TASKS["joint/flat18" if task == "joint" and head == "flat18" else task]


def label_map(names, age_upper: int) -> dict[str, list[str]]:
    return {h: classes(h, age_upper) for h in names}


def marginals(p18: np.ndarray) -> dict[str, np.ndarray]:
    """Per-head marginal probabilities of an 18-way distribution (class = mask*6 + gender*3 + age)."""
    p = p18.reshape(-1, *(HEADS[h].size() for h in FACTORS))
    axes = range(1, len(FACTORS) + 1)
    return {h: p.sum(tuple(a for a in axes if a != i + 1)) for i, h in enumerate(FACTORS)}


def predict_classes(probs: dict[str, np.ndarray]) -> np.ndarray:
    """18-class predictions: the 18-way head's argmax when present, else the three heads' argmaxes combined."""
    if "class" in probs:
        return probs["class"].argmax(1)
    return labels.encode(*(probs[h].argmax(1) for h in FACTORS))


def check_labels(df, source) -> None:
    """The label columns of a table (mask, gender, age, class, where present): whole numbers naming a class
    of their head, or a one-line MaskclsError naming the file, the row and the column."""
    import pandas as pd

    from maskcls.errors import MaskclsError

    for head in ("mask", "gender", "age", "class"):
        if head not in df:
            continue
        v = pd.to_numeric(df[head], errors="coerce")
        bad = (~v.between(0, HEADS[head].size() - 1) | (v != v.round())).to_numpy()
        if bad.any():
            i = int(bad.argmax())
            article = "an" if head[0] in "aeiou" else "a"
            raise MaskclsError(f"{source}: row {i + 2}, column {head}: {str(df[head].iloc[i])!r} is not {article} "
                               f"{head} label (0..{HEADS[head].size() - 1})")  # fmt: skip


SUM_TOLERANCE = 1e-3


def check_probs(df, source, key: str = "ImageID") -> list[str]:
    """Every head's probability columns in a table (predictions, oof.csv, pseudo-labels), checked the one
    way every reader shares: all columns of a head present, numbers, finite, in [0, 1], each row summing
    to 1; `<head>_ge_<a>` columns (P(age >= a)) in [0, 1]. Returns the heads found; raises a one-line
    MaskclsError naming the file, the row (as a spreadsheet counts it: the header is row 1), the row's
    `key` and the column otherwise."""
    import pandas as pd

    from maskcls.errors import MaskclsError

    def where(i: int) -> str:
        return f"row {i + 2}" + (f" ({df[key].iloc[i]})" if key in df.columns else "")

    found = [h for h in HEADS if any(re.fullmatch(rf"{h}_\d+", str(c)) for c in df.columns)]
    groups = {h: HEADS[h].columns() for h in found}
    cum = [c for c in df.columns if "_ge_" in str(c)]
    if cum:
        groups["_ge_"] = cum
    for head, cols in groups.items():
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise MaskclsError(f"{source}: head {head!r} lacks column(s) {', '.join(missing)}")
        values = {}
        for c in cols:
            v = pd.to_numeric(df[c], errors="coerce")  # text -> NaN: found below, named as text
            bad = (v.isna() & df[c].notna()).to_numpy()
            if bad.any():
                i = int(np.argmax(bad))
                raise MaskclsError(f"{source}: {where(i)}, column {c}: {df[c].iloc[i]!r} is not a number")
            values[c] = v.to_numpy(dtype=np.float64)
        p = np.stack([values[c] for c in cols], axis=1) if len(df) else np.zeros((0, len(cols)))
        for problem, bad in (("empty or missing value (a truncated file?)", np.isnan(p)),
                             ("not finite", np.isinf(p)), ("a negative value", p < 0), ("above 1", p > 1)):  # fmt: skip
            if bad.any():
                i, j = map(int, np.argwhere(bad)[0])
                raise MaskclsError(f"{source}: {where(i)}, column {cols[j]}: {problem} ({p[i, j]!r})")
        if head != "_ge_":
            off = np.abs(p.sum(axis=1) - 1) > SUM_TOLERANCE
            if off.any():
                i = int(np.argmax(off))
                raise MaskclsError(f"{source}: {where(i)}: {head} probabilities sum to {p[i].sum():.4f}, not 1 "
                                   f"(within {SUM_TOLERANCE})")  # fmt: skip
    return found

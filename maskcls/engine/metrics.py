"""Validation metrics: macro-F1 (the leaderboard metric), accuracy, per-class F1 (pictures: maskcls/plots.py)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score

from maskcls import labels
from maskcls.heads import FACTORS, predict_classes


def head_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> dict:
    classes = list(range(num_classes))
    per_class = f1_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    return {
        "f1": float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)),
        "acc": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
        "per_class_f1": [round(float(v), 4) for v in per_class],
    }


def flat(metrics: dict) -> dict:
    """A history row's metric columns: every head's F1, then its accuracy and (heads of years) MAE."""
    heads = {h: m for h, m in metrics.items() if isinstance(m, dict)}
    return {**{f"{h}_f1": m["f1"] for h, m in heads.items()},
            **{f"{h}_{k}": m[k] for h, m in heads.items() for k in ("acc", "mae") if k in m}}  # fmt: skip


def evaluate(probs: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict:
    """Metrics per head, plus the combined 18-class metrics when all three tasks are present.

    `score` is what picks the best checkpoint: the 18-class macro-F1 for joint models, else
    the single head's macro-F1 (never accuracy: the leaderboard is macro-F1).
    """
    out = {name: head_metrics(targets[name], p.argmax(1), p.shape[1]) for name, p in probs.items()}
    if "class" in probs or set(FACTORS) <= set(probs):
        out["class"] = head_metrics(targets["class"], predict_classes(probs), labels.NUM_CLASSES)
        out["score"] = out["class"]["f1"]
    else:
        out["score"] = out[next(iter(probs))]["f1"]
    return out

"""Validation metrics: macro-F1 (the leaderboard metric), accuracy, per-class F1, confusion matrices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

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


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, names: list[str], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from maskcls import io

    cm = confusion_matrix(y_true, y_pred, labels=list(range(len(names))))
    size = 3 + 0.45 * len(names)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=70, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for i in range(len(names)):
        for j in range(len(names)):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if cm[i, j] > cm.max() / 2 else "black")  # fmt: skip
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    io.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path

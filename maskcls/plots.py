"""The pictures a team reads: confusion matrices, training curves, per-class F1 bars.

Each function writes one PNG atomically and returns its path; fonts are sized for the saved
image (read at 100 % zoom), not for a notebook.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def pyplot():
    """matplotlib's pyplot, headless, its font cache and settings in a folder of this process's own.

    Without MPLCONFIGDIR, matplotlib writes ~/.cache/matplotlib and ~/.config/matplotlib on the first
    plot: outside every folder the user named. A temporary folder, removed when the process ends.
    """
    if "MPLCONFIGDIR" not in os.environ and "matplotlib" not in sys.modules:
        import atexit
        import shutil
        import tempfile

        folder = tempfile.mkdtemp(prefix="maskcls-matplotlib-")
        atexit.register(shutil.rmtree, folder, True)
        os.environ["MPLCONFIGDIR"] = folder
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, dpi: int = 100) -> Path:
    from maskcls import io

    plt = pyplot()
    fig.tight_layout()
    io.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    plt.close(fig)
    return Path(path)


def plot_confusion(y_true: np.ndarray, y_pred: np.ndarray, names: list[str], path: Path, title: str) -> Path:
    """Row-normalised colours (each true class's recall spread), counts written in every non-empty cell."""
    from sklearn.metrics import confusion_matrix

    plt = pyplot()
    n = len(names)
    cm = confusion_matrix(y_true, y_pred, labels=list(range(n)))
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = 3.5 + 0.62 * n
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.04, label="share of the true class (row)")
    font = 11 if n <= 6 else 9
    ax.set_xticks(range(n), names, rotation=60 if n > 3 else 0, ha="right" if n > 3 else "center", fontsize=font)
    ax.set_yticks(range(n), [f"{name} ({int(cm[i].sum())})" for i, name in enumerate(names)], fontsize=font)
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=font,
                        color="white" if share[i, j] > 0.5 else "black")  # fmt: skip
    ax.set_xlabel("predicted", fontsize=font + 1)
    ax.set_ylabel("true (images)", fontsize=font + 1)
    ax.set_title(title, fontsize=font + 2)
    return _save(fig, path)


def plot_curves(histories: dict[int, pd.DataFrame], path: Path, title: str) -> Path:
    """Train loss, validation macro-F1 per head and LR by epoch; one line style per fold."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    styles = ["-", "--", ":", "-."]
    colors = {"class": "black", "mask": "tab:blue", "gender": "tab:orange", "age": "tab:green"}
    for k, (fold, h) in enumerate(sorted(histories.items())):
        ls = styles[k % len(styles)]
        epochs = h["epoch"] + 1
        axes[0].plot(epochs, h["train_loss"], ls, color="tab:red", label=f"fold {fold}")
        for head, color in colors.items():
            if f"{head}_f1" in h:  # colour = head (legend once), line style = fold (as in the loss panel)
                label = ("18 classes" if head == "class" else head) if k == 0 else None
                axes[1].plot(epochs, h[f"{head}_f1"], ls, color=color, label=label, lw=2.4 if head == "class" else 1.4)
        axes[2].plot(epochs, h["lr"], ls, color="tab:purple", label=f"fold {fold}")
    from matplotlib.ticker import MaxNLocator

    panels = [("train loss", "loss"), ("validation macro-F1 (line style: fold)", "macro-F1"), ("learning rate", "lr")]
    for ax, (name, y) in zip(axes, panels, strict=True):
        ax.set_title(name, fontsize=12)
        ax.set_xlabel("epoch", fontsize=11)
        ax.set_ylabel(y, fontsize=11)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=9)
    if not any(ax.get_lines() for ax in axes[1:2]):  # the final fit (--fold none) validates nothing
        axes[1].text(0.5, 0.5, "no validation (final fit)", ha="center", va="center", fontsize=12)
    axes[1].set_ylim(0, 1)
    fig.suptitle(title, fontsize=13)
    return _save(fig, path)


def plot_per_class_f1(per_class: list[float], names: list[str], path: Path, title: str) -> Path:
    """One bar per class (its F1), the macro-F1 as a line: the rare classes that cost the score stand out."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(names) + 2), 4.8))
    values = np.asarray(per_class)
    bars = ax.bar(range(len(names)), values, color=["tab:red" if v < values.mean() else "tab:blue" for v in values])
    ax.axhline(values.mean(), color="black", ls="--", label=f"macro-F1 {values.mean():.3f}")
    for b, v in zip(bars, values, strict=True):
        ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.2f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=9)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("F1", fontsize=11)
    ax.set_title(title, fontsize=12)
    ax.legend(fontsize=9)
    return _save(fig, path)


def plot_suspects(suspects: pd.DataFrame, images: list, path: Path, cols: int = 6) -> Path:
    """A grid of audit suspects: each photo (RGB array, or None: a tile saying so) titled with its person,
    head, given and predicted label."""
    plt = pyplot()
    n = max(len(suspects), 1)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 2.4, rows * 3.1), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, r, img in zip(axes.flat, suspects.itertuples(), images, strict=False):
        if img is not None:
            ax.imshow(img)
        else:
            ax.text(0.5, 0.5, "photo not found", ha="center", va="center", fontsize=9, transform=ax.transAxes)
        who = r.person if r.unit == "person" else f"{r.person}/{r.stem}"
        ax.set_title(f"#{r.rank} {who}\n{r.head}: given {r.given}\npredicted {r.predicted} (loss {r.loss:.1f})",
                     fontsize=9, color="tab:red" if r.given != r.predicted else "black")  # fmt: skip
    fig.suptitle("audit: top suspects (red: the models disagree with the given label)", fontsize=12)
    return _save(fig, path)

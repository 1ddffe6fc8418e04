"""What a run writes, as callbacks on the loop's events (engine/callbacks.py): the loop computes, these save.

A fold folder holds best.pt + metrics.json (BestWeights), oof.csv (OutOfFold), confusion_<head>.png
(ConfusionPlots), last.pt (LastCheckpoint), history.csv + curves.png (History); the run folder the
concatenated oof.csv, curves.png over the folds and summary.json. Rank 0 alone runs them.

Their order is part of the contract (`outputs()`): everything of a best epoch is on disk before last.pt
says the epoch is done, so a run killed in between redoes that epoch on --resume and never pairs a
new last.pt with an old best.pt, oof.csv or metrics.json.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from maskcls import heads, io
from maskcls.engine.callbacks import Callback
from maskcls.engine.kinds import AGES
from maskcls.models import save_checkpoint
from maskcls.plots import plot_confusion, plot_curves
from maskcls.runs import FINAL, fold_dir


def weights_name(trainer) -> str:
    """Which weights the epoch chose: the EMA copy or the raw model."""
    return "ema" if trainer.chosen is not trainer.model else "raw"


class BestWeights(Callback):
    """best.pt and metrics.json: the best validated epoch's weights (raw or EMA, whichever scored
    higher); for the final fit, which validates nothing, its last epoch's."""

    def on_epoch_end(self, t, row):
        epoch, w = row["epoch"], weights_name(t)
        if t.final and t.finished:
            save_checkpoint(t.dir / "best.pt", t.chosen, t.cfg, t.heads, epoch=epoch, fold=t.fold, best_score=None,
                            weights=w)  # fmt: skip
            io.write_json(t.dir / "metrics.json", {"fold": t.fold, "best_epoch": epoch, "best_score": None,
                                                   "final_fit": True, "weights": w, "train_loss": row["train_loss"],
                                                   "metrics": {}})  # fmt: skip
        elif row["best"] and not t.final:
            save_checkpoint(t.dir / "best.pt", t.chosen, t.cfg, t.heads, epoch=epoch, fold=t.fold,
                            best_score=t.metrics["score"], weights=w)  # fmt: skip
            io.write_json(t.dir / "metrics.json", {"fold": t.fold, "best_epoch": epoch, "weights": w,
                                                   "best_score": t.metrics["score"], "metrics": t.metrics})  # fmt: skip


class OutOfFold(Callback):
    """oof.csv: the best epoch's validation probabilities per fold, and all folds' in the run folder
    (the input of ensembling, threshold tuning and the label audit)."""

    def on_epoch_end(self, t, row):
        if row["best"] and not t.final:
            io.write_csv(t.dir / "oof.csv", oof_table(t.val_df, t.probs, t.fold))

    def on_run_end(self, run_dir, cfg, fold_ids, summaries):
        validated = [k for k in fold_ids if k != FINAL]
        if validated:  # person ids stay text: 000001, not 1
            parts = [pd.read_csv(fold_dir(run_dir, k) / "oof.csv", dtype={"person": str}) for k in validated]
            io.write_csv(run_dir / "oof.csv", pd.concat(parts, ignore_index=True))


class ConfusionPlots(Callback):
    """confusion_<head>.png of the best epoch (and, for three heads, of the 18 classes they combine into)."""

    def on_epoch_end(self, t, row):
        if not row["best"] or t.final:
            return
        preds = {head: t.probs[head].argmax(1) for head in t.heads}
        if "class" in t.metrics and "class" not in preds:  # the three heads combined: the leaderboard's view
            preds["class"] = heads.predict_classes(t.probs)
        for head, pred in preds.items():
            title = f"fold {t.fold} {head}, epoch {row['epoch'] + 1}: macro-F1 {t.metrics[head]['f1']:.3f}"
            plot_confusion(t.val_df[head].to_numpy(), pred, heads.classes(head, t.cfg.age_upper),
                           t.dir / f"confusion_{head}.png", title)  # fmt: skip


class LastCheckpoint(Callback):
    """last.pt after every epoch: model, optimizer, scheduler, scaler, EMA, history (trainer.state)."""

    def on_epoch_end(self, t, row):
        save_checkpoint(t.dir / "last.pt", t.model, t.cfg, t.heads, **t.state(row["epoch"]))


class History(Callback):
    """history.csv and curves.png per fold after every epoch; curves.png of every fold for the run."""

    def on_epoch_end(self, t, row):
        io.write_csv(t.dir / "history.csv", pd.DataFrame(t.history))
        plot_curves({t.fold: pd.DataFrame(t.history)}, t.dir / "curves.png", f"{t.dir.parent.name} fold {t.fold}")

    def on_run_end(self, run_dir, cfg, fold_ids, summaries):
        histories = {k: pd.read_csv(fold_dir(run_dir, k) / "history.csv") for k in fold_ids}
        plot_curves(histories, run_dir / "curves.png", f"{run_dir.name}: {cfg.task} {cfg.backbone} {cfg.img_size}")


class Summary(Callback):
    """summary.json: the folds trained and each one's best validation score."""

    def on_run_end(self, run_dir, cfg, fold_ids, summaries):
        scores = [s["best_score"] for s in summaries if s["best_score"] is not None]
        io.write_json(run_dir / "summary.json", {"folds": fold_ids, "scores": scores,
                      "mean_score": float(np.mean(scores)) if scores else None})  # fmt: skip


def outputs() -> list[Callback]:
    """Every file a run writes, in the order the module docstring explains."""
    return [BestWeights(), OutOfFold(), ConfusionPlots(), LastCheckpoint(), History(), Summary()]


def oof_table(df: pd.DataFrame, probs: dict, fold: int) -> pd.DataFrame:
    """Out-of-fold rows: path, person, labels, fold, one probability column per class of each head
    (and `age_ge_<a>` = P(age >= a) columns for a head that predicts years)."""
    out = df[["path", "person", "mask", "gender", "age", "class", "age_years"]].copy()
    out["fold"] = fold
    for head, p in probs.items():
        names = ([f"{head[:-4]}_ge_{a}" for a in AGES.tolist()] if head.endswith("_cum")
                 else [f"{head}_{k}" for k in range(p.shape[1])])  # fmt: skip
        out = pd.concat([out, pd.DataFrame(p, columns=names, index=out.index)], axis=1)
    return out

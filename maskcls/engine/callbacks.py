"""Callbacks: what happens around the loop, kept out of it. The loop (engine/trainer.py) calls every
callback on five events; a callback reads what it needs from the FoldTrainer it is handed (its cfg,
fold, dir, model, chosen weights, probs, metrics, history, final and finished flags).

Console lines and wandb are here; every file a run writes is a callback too (engine/outputs.py).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from maskcls.progress import clock


class Callback:
    def on_run_start(self, epochs_to_train: int) -> None: ...
    def on_fold_start(self, trainer) -> None: ...
    def on_epoch_end(self, trainer, row: dict) -> None: ...  # row: the epoch's line of history.csv
    def on_fold_end(self, trainer, summary: dict) -> None: ...  # summary: the fold's metrics.json
    def on_run_end(self, run_dir: Path, cfg, fold_ids: list, summaries: list[dict]) -> None: ...


class ConsoleCallback(Callback):
    """One line per epoch as it ends; a table per fold at the end."""

    def __init__(self, console: Console):
        self.console = console
        self.rows: list[dict] = []
        self.total, self.done, self.t0 = 0, 0, time.monotonic()

    def on_run_start(self, epochs_to_train):
        self.total, self.done, self.t0 = epochs_to_train, 0, time.monotonic()

    def on_fold_start(self, trainer):
        self.rows = []
        self.console.print(f"[bold]fold {trainer.fold}[/] -> {trainer.dir}")

    def on_epoch_end(self, trainer, row):
        self.rows.append(row)
        heads = " ".join(f"{k[:-3]} {v:.3f}" for k, v in row.items() if k.endswith("_f1") and k != "class_f1")
        heads += "".join(f", {k[:-4]} MAE {v:.2f} y" for k, v in row.items() if k.endswith("_mae"))
        best = " [green]*best[/]" if row["best"] else ""
        self.done += 1
        elapsed = time.monotonic() - self.t0
        eta = ""
        if self.total > self.done:  # the whole run: every epoch of every fold still to train
            left = elapsed / self.done * (self.total - self.done)
            eta = f"  run {self.done}/{self.total} epochs, about {clock(left)} left"
        score = f"  f1 {row['score']:.4f}  ({heads})" if row["score"] == row["score"] else ""  # NaN: final fit
        weights = f"  [{row['weights']} weights]" if "weights" in row else ""
        self.console.print(
            f"  epoch {row['epoch'] + 1:>3}  loss {row['train_loss']:.4f}{score}{weights}"
            f"  lr {row['lr']:.2e}  {row['seconds']:.0f}s{best}{eta}"
        )

    def on_fold_end(self, trainer, summary):
        fold = trainer.fold
        if summary.get("final_fit"):
            self.console.print(f"final fit: {summary['best_epoch'] + 1} epochs on every person, "
                               f"{summary['weights']} weights saved as best.pt")  # fmt: skip
            return
        t = Table(title=f"fold {fold}: best epoch {summary['best_epoch'] + 1}")
        t.add_column("head")
        t.add_column("macro-F1", justify="right")
        t.add_column("accuracy", justify="right")
        t.add_column("MAE (years)", justify="right")
        for head, m in summary["metrics"].items():
            if isinstance(m, dict):
                t.add_row(head, f"{m['f1']:.4f}", f"{m['acc']:.4f}", f"{m['mae']:.2f}" if "mae" in m else "")
        self.console.print(t)


class WandbCallback(Callback):
    """Logs to Weights & Biases; offline automatically when no API key is configured.

    Every file wandb writes stays under the run: its run files, and also its debug logs, artifact
    cache, staging data and settings (which it otherwise puts in ~/.cache/wandb, ~/.local/share/wandb
    and ~/.config/wandb), through the WANDB_*_DIR variables of this process, set before wandb loads.
    """

    DIRS = {"WANDB_DIR": "", "WANDB_CACHE_DIR": "cache", "WANDB_DATA_DIR": "data", "WANDB_CONFIG_DIR": "config"}

    def __init__(self, project: str, run_dir: Path):
        for var, sub in self.DIRS.items():
            folder = Path(run_dir) / "wandb" / sub
            folder.mkdir(parents=True, exist_ok=True)
            os.environ[var] = str(folder.resolve())
        import wandb  # imported only when --wandb is given

        self.wandb = wandb
        self.project = project
        self.run_dir = run_dir
        self.run = None

    @staticmethod
    def mode() -> str:
        if os.environ.get("WANDB_MODE"):
            return os.environ["WANDB_MODE"]
        netrc = Path.home() / ".netrc"
        has_key = bool(os.environ.get("WANDB_API_KEY")) or (netrc.is_file() and "api.wandb.ai" in netrc.read_text())
        return "online" if has_key else "offline"

    def on_fold_start(self, trainer):
        fold = trainer.fold
        self.run = self.wandb.init(
            project=self.project, name=f"{self.run_dir.name}-fold{fold}", group=self.run_dir.name,
            config=dict(trainer.cfg, fold=fold), dir=str(trainer.dir), mode=self.mode(), reinit="finish_previous",
        )  # fmt: skip

    def on_epoch_end(self, trainer, row):
        self.run.log({k: v for k, v in row.items() if isinstance(v, int | float)}, step=row["epoch"])

    def on_fold_end(self, trainer, summary):
        self.run.summary.update({"best_score": summary["best_score"], "best_epoch": summary["best_epoch"]})
        self.run.finish()

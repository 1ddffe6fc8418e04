"""train(cfg): one loop for every task, on person-held-out folds.

The task only decides which heads the model has (heads.TASKS) and each head's kind how it
learns (engine/kinds.py); sampling, mixing, validation, checkpoints and resume are shared.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.progress import Progress

from maskcls import io, weights
from maskcls.config import Config
from maskcls.data import load_folds
from maskcls.data.splits import apply_folds, run_folds
from maskcls.data.table import check_policy, fold_rows, load_table
from maskcls.engine import distributed, loaders
from maskcls.engine.callbacks import Callback, ConsoleCallback, WandbCallback
from maskcls.engine.inference import autocast, infer
from maskcls.engine.kinds import build_heads, expected_age, widths
from maskcls.engine.metrics import evaluate, flat
from maskcls.engine.mixers import build_mixer
from maskcls.engine.optim import build_ema, build_optimizer, lr_factor
from maskcls.engine.outputs import outputs
from maskcls.errors import MaskclsError
from maskcls.labels import parse_ages
from maskcls.models import build_model, check_backbone, pin_weights
from maskcls.progress import LogProgress, loss_columns
from maskcls.runs import FINAL, Run, fold_dir, new_run_dir
from maskcls.runtime import auto_workers, cache_dir_of, seed_everything

console = Console()

FINAL_SEED = 99  # the final fit seeds its initialisation, sampling and augmentation as fold 99 would


class FoldTrainer:
    """Trains one fold (or, fold "none", every person): the loop, validation and resume. What it
    writes, callbacks write (engine/outputs.py), reading the state below after each epoch."""

    def __init__(self, cfg, table: pd.DataFrame, fold: int | str, fold_dir: Path, callbacks: list[Callback],
                 ctx: distributed.Context | None = None):  # fmt: skip
        self.cfg, self.fold, self.dir, self.callbacks = cfg, fold, fold_dir, callbacks
        self.final = fold == FINAL
        self.key = FINAL_SEED if self.final else fold  # what seeds this fold's randomness
        self.kinds = build_heads(cfg)  # {head: kind}: targets, loss and probabilities of each head
        self.heads = widths(self.kinds)
        self.ctx = ctx or distributed.setup(cfg.device)
        self.device = distributed.device(self.ctx, cfg.device)
        if cfg.batch_size % self.ctx.world:
            raise MaskclsError(f"--batch-size {cfg.batch_size} (global) must divide by {self.ctx.world} processes")
        self.amp = cfg.amp and self.device.type == "cuda"
        # channels_last pays on the CPU too: 1.67x the training images/s of MobileNetV2 and 1.13x of
        # ResNet-18 at 128x96 on 2 cores (bench/train.py, README "Performance")
        self.channels_last = cfg.channels_last
        self.train_df, self.val_df = fold_rows(table, fold, self.final, parse_ages(cfg.drop_ages))
        seed_everything(cfg.seed, self.key)  # initialisation depends on the seed and fold only
        # a fold that resumes takes every weight from its last.pt: its starting file may have gone since
        start = cfg if not (fold_dir / "last.pt").is_file() else Config({**cfg, "weights": None, "pretrained": False})
        self.model = build_model(start, self.heads).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        # what training calls (net): the model itself, or its DDP wrapper
        self.model, self.net = distributed.wrap(self.model, cfg.sync_bn, self.ctx, self.device)
        self.ema = build_ema(cfg, self.model)  # None, or the EMA copy validated beside the raw weights
        workers = cfg.workers if cfg.workers >= 0 else auto_workers(self.device)
        cache = cache_dir_of(cfg, self.dir.parent.parent) if cfg.cache else None  # beside the run directories
        balance_on = "balance" if len(self.heads) > 1 else next(iter(self.heads))  # group labels, never years
        train_ds = loaders.dataset(cfg, self.train_df, self.kinds, True, cache, console)
        self.train_loader, self.sampler, self.generator = loaders.train_loader(
            cfg, train_ds, self.train_df[balance_on].to_numpy(), self.key, workers, self.device, self.ctx)
        self.val_loader, self.val_idx = None, None
        if not self.final:
            val_ds = loaders.dataset(cfg, self.val_df, self.kinds, False, cache, console)
            self.val_loader, self.val_idx = loaders.val_loader(cfg, val_ds, workers, self.device, self.ctx)
        self.steps_per_epoch = math.ceil(len(self.train_loader) / cfg.accum_steps)
        self.opt = build_optimizer(cfg, self.model)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_factor(cfg, self.steps_per_epoch))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.mixer = build_mixer(cfg)
        self.start_epoch, self.best_score, self.best_epoch, self.history = 0, -1.0, -1, []
        self.finished = False
        # the epoch just validated, for the callbacks: the weights chosen (raw or EMA), their
        # validation probabilities and metrics (None and {} for the final fit)
        self.chosen, self.probs, self.metrics = self.model, None, {}

    # -- resume -----------------------------------------------------------------------------
    def state(self, epoch: int) -> dict:
        """What last.pt holds beside the model: everything `resume` restores."""
        # No RNG states: every epoch reseeds from (seed, fold, epoch), so a resumed run draws the
        # same batches, augmentations and mixes as an uninterrupted one without them.
        return dict(
            epoch=epoch, fold=self.fold, optimizer=self.opt.state_dict(), scheduler=self.sched.state_dict(),
            scaler=self.scaler.state_dict(), best_score=self.best_score, best_epoch=self.best_epoch,
            history=self.history, finished=self.finished,
            **({"ema": self.ema.module.state_dict()} if self.ema is not None else {}),
        )  # fmt: skip

    def resume(self) -> None:
        last = self.dir / "last.pt"
        if not last.exists():
            return
        if self.ctx.main:
            io.clean_stale_temps(self.dir)
        ckpt = io.torch_load(last)  # never runs code, even from a planted last.pt
        missing = {"model", "optimizer", "scheduler", "scaler", "epoch", "history"} - set(ckpt)
        if missing:
            raise MaskclsError(f"{last}: not a maskcls training checkpoint (lacks {', '.join(sorted(missing))})")
        self.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.sched.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None:  # a run started before --ema existed has none: its EMA starts here
            self.ema.module.load_state_dict(ckpt.get("ema", ckpt["model"]))
        self.start_epoch = ckpt["epoch"] + 1
        self.best_score, self.best_epoch, self.history = ckpt["best_score"], ckpt["best_epoch"], ckpt["history"]
        # Finished is recomputed, not read: `--resume RUN --epochs N` extends a run that had ended.
        patience = self.cfg.patience
        stopped = bool(patience and ckpt["epoch"] - self.best_epoch >= patience)
        self.finished = self.start_epoch >= self.cfg.epochs or stopped
        console.print(f"  resuming fold {self.fold} after epoch {ckpt['epoch'] + 1} of {self.cfg.epochs}")

    # -- the loop ----------------------------------------------------------------------------
    def train_one_epoch(self, epoch: int, progress: Progress) -> float:
        cfg, model = self.cfg, self.net
        model.train()
        seed_everything(cfg.seed, self.key, epoch)  # same batches and augmentations after a resume
        self.sampler.set_epoch(epoch)
        self.generator.manual_seed(cfg.seed * 1000 + self.key * 100 + epoch)
        aug = self.train_loader.dataset.augment
        if aug is not None:  # each rank its own augmentation stream
            aug.set_random_seed(cfg.seed * 1000 + self.key * 100 + epoch + 7919 * self.ctx.rank)
        mix_gen = torch.Generator().manual_seed(cfg.seed + epoch)
        weights = {h: cfg.loss_weights.get(h, 1.0) for h in self.heads}
        task = progress.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=len(self.train_loader), loss=float("nan"))
        total, n = 0.0, 0
        self.opt.zero_grad(set_to_none=True)
        for step, (x, y) in enumerate(self.train_loader):
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            targets = {h: kind.targets(y[:, i]) for i, (h, kind) in enumerate(self.kinds.items())}
            if self.mixer is not None:
                x, targets = self.mixer(x, targets, mix_gen, groups=y[:, -1])
            with autocast(self.device, self.amp):
                out = model(x)
            loss = sum(weights[h] * kind.loss(out[h], targets[h]) for h, kind in self.kinds.items())
            if not self._all_finite(loss):
                last = self.dir / "last.pt"
                kept = f"the last good checkpoint is {last}" if last.exists() else "no epoch had finished yet"
                raise MaskclsError(
                    f"fold {self.fold} epoch {epoch + 1} step {step}: loss is {loss.item()}, stopped; {kept} "
                    "(try a lower --lr)"
                )
            self.scaler.scale(loss / cfg.accum_steps).backward()
            if (step + 1) % cfg.accum_steps == 0 or step + 1 == len(self.train_loader):
                if cfg.clip_grad:
                    self.scaler.unscale_(self.opt)  # clip the true gradients, not the AMP-scaled ones
                    torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
                self.scaler.step(self.opt)
                self.scaler.update()
                self.opt.zero_grad(set_to_none=True)
                self.sched.step()
                if self.ema is not None:
                    self.ema.update(self.model, step=self.sched.last_epoch)  # last_epoch: optimizer steps so far
            total += loss.item() * len(x)
            n += len(x)
            progress.update(task, advance=1, loss=total / n)
        progress.remove_task(task)
        return distributed.mean(total / max(n, 1), n)

    def _all_finite(self, loss: torch.Tensor) -> bool:
        """Finite on every rank (all ranks stop together, none waits forever for the others)."""
        bad = torch.logical_not(torch.isfinite(loss.detach())).float().reshape(1)  # on the loss's device (NCCL)
        if self.ctx.active:
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        return bad.item() == 0

    def validate(self, model: torch.nn.Module) -> tuple[dict, dict]:
        probs = infer(model, self.val_loader, self.device, self.kinds, self.amp)
        probs = distributed.gather(self.val_idx, probs, len(self.val_df))  # the whole fold, on every rank
        targets = {h: self.val_df[h].to_numpy() for h in [*self.heads, "class"]}
        metrics = evaluate({h: probs[h] for h in self.heads}, targets)
        for h in self.heads:  # heads that predict years: mean absolute error beside the macro-F1
            if f"{h}_cum" in probs:
                metrics[h]["mae"] = float(np.abs(expected_age(probs[f"{h}_cum"]) - self.val_df["age_years"]).mean())
        return probs, metrics

    def fit(self) -> dict:
        self.resume()
        callbacks = self.callbacks if self.ctx.main else []  # rank 0 alone writes files, logs and wandb
        for cb in callbacks:
            cb.on_fold_start(self)
        with LogProgress(*loss_columns(), console=console, transient=True, disable=not self.ctx.main) as progress:
            for epoch in range(self.start_epoch, self.cfg.epochs):
                if self.finished:
                    break
                t0 = time.time()
                train_loss = self.train_one_epoch(epoch, progress)
                self.chosen, self.probs, self.metrics, scores = self.validate_weights()
                metrics = self.metrics
                improved = metrics["score"] > self.best_score
                if improved:
                    self.best_score, self.best_epoch = metrics["score"], epoch
                row = {"epoch": epoch, "train_loss": train_loss, "score": metrics["score"], **scores,
                       "lr": self.opt.param_groups[0]["lr"], "seconds": time.time() - t0, "best": improved,
                       **flat(metrics)}  # fmt: skip
                self.history.append(row)
                patience = self.cfg.patience
                self.finished = epoch + 1 == self.cfg.epochs or bool(patience and epoch - self.best_epoch >= patience)
                for cb in callbacks:
                    cb.on_epoch_end(self, row)
        distributed.barrier()  # rank 0 has written metrics.json
        summary = json.loads((self.dir / "metrics.json").read_text())
        for cb in callbacks:
            cb.on_fold_end(self, summary)
        return summary

    def validate_weights(self) -> tuple[torch.nn.Module, dict | None, dict, dict]:
        """(weights, probabilities, metrics, scores) of the better of the raw and the EMA weights.

        The final fit validates nothing: its weights are the EMA ones when --ema is on, else the raw.
        """
        if self.final:
            return (self.ema.module if self.ema else self.model), None, {"score": float("nan")}, {}
        probs, metrics = self.validate(self.model)
        if self.ema is None:
            return self.model, probs, metrics, {}
        ema_probs, ema_metrics = self.validate(self.ema.module)
        scores = {"raw_score": metrics["score"], "ema_score": ema_metrics["score"]}
        if ema_metrics["score"] > metrics["score"]:
            return self.ema.module, ema_probs, ema_metrics, {**scores, "weights": "ema"}
        return self.model, probs, metrics, {**scores, "weights": "raw"}


def _train_folds(cfg, table: pd.DataFrame, run_dir: Path, callbacks: list[Callback], new: bool,
                 ctx: distributed.Context) -> tuple[list[dict], list]:  # fmt: skip
    if new and ctx.main:
        Run.create(run_dir, cfg)
    console.print(f"run [bold]{run_dir}[/] task {cfg.task} backbone {cfg.backbone} img {cfg.img_size}")
    if ctx.active:
        console.print(distributed.describe(ctx, cfg.batch_size))
    real = table[~table["train_only"]]
    folds = run_folds(cfg, real, run_dir / "folds.csv") if ctx.main else None
    distributed.barrier()
    folds = folds if ctx.main else load_folds(run_dir / "folds.csv")
    extra = table[table["train_only"]].assign(fold=-1)  # fold -1: in every training set, never validated
    table = pd.concat([apply_folds(real, folds, str(run_dir / "folds.csv")), extra], ignore_index=True)
    fold_ids = Run.fold_ids(cfg, folds)
    done = {k: len(pd.read_csv(h)) for k in fold_ids if (h := fold_dir(run_dir, k) / "history.csv").is_file()}
    for cb in callbacks if ctx.main else []:
        cb.on_run_start(sum(max(cfg.epochs - done.get(k, 0), 0) for k in fold_ids))
    summaries = []
    for k in fold_ids:
        try:
            summaries.append(FoldTrainer(cfg, table, k, fold_dir(run_dir, k), callbacks, ctx).fit())
        except torch.cuda.OutOfMemoryError:
            raise MaskclsError(
                f"CUDA out of memory at batch size {cfg.batch_size}: lower --batch-size "
                "(or keep the effective batch with accum_steps)"
            ) from None
    return summaries, fold_ids


def train(cfg: Config | None, resume: Path | None = None, callbacks: list[Callback] | None = None,
          overrides: dict | None = None, task: str | None = None) -> Path:  # fmt: skip
    """Train every fold the config asks for (or continue the run `resume`, which must be of `task`
    when given: train-age --resume of a joint run is refused); returns the run directory."""
    if resume is not None:
        run_dir = Path(resume)
        cfg = Run(run_dir).resume_config(overrides)
        if task is not None and cfg.task != task:
            raise MaskclsError(f"--resume {run_dir}: a {cfg.task} run; continue it with train-{cfg.task}, "
                               f"not train-{task}")  # fmt: skip
    elif cfg.data is None:
        raise MaskclsError("no data folder: pass --data DIR (the folder holding train/ and eval/)")
    # Bad input fails before a run directory exists, so a typo leaves no empty run behind.
    inputs = {"--data": cfg.data, "--external": cfg.external}
    io.check_apart(cfg.out, "--out", inputs)  # a run written into the data set would make it unreadable
    if cfg.cache_dir:
        io.check_apart(cfg.cache_dir, "--cache-dir", inputs)
    check_backbone(cfg.backbone)
    if resume is None:  # the data set by its full path: the run's photos stay findable from any folder
        cfg["data"] = str(Path(cfg.data).resolve())
    if resume is None:  # one weights file, recorded with its SHA-256 in config.json (models.pin_weights)
        console.print(weights.describe(pin_weights(cfg)))
    table = load_table(cfg, console)
    check_policy(cfg, table, console)
    if cfg.fold == FINAL and cfg.patience:
        raise MaskclsError("--patience stops on validation scores; --fold none validates nothing: drop one")
    ctx = distributed.setup(cfg.device)
    console.quiet = not ctx.main
    # every file a run writes, then what the caller watches with (console lines by default), then wandb
    callbacks = [*outputs(), *(callbacks if callbacks is not None else [ConsoleCallback(console)])]
    if resume is None:
        out_existed = Path(cfg.out).exists()
        run_dir = new_run_dir(cfg.out, cfg.name or f"{cfg.task}-{cfg.backbone.replace('/', '-')}") if ctx.main else None
        run_dir = Path(distributed.broadcast(str(run_dir)))
    elif ctx.main and overrides:  # the run records what it now trains with (e.g. the extended --epochs)
        io.write_json(run_dir / "config.json", cfg)
    try:
        if cfg.wandb and ctx.main:
            callbacks.append(WandbCallback(cfg.wandb_project, run_dir))
        summaries, fold_ids = _train_folds(cfg, table, run_dir, callbacks, resume is None, ctx)
    except BaseException:
        # A new run that never finished an epoch holds nothing to resume: remove it, so a fixed command gets
        # the same name, not a `-2` suffix. Only the run folder this call made goes: --out may be shared (a
        # sweep starts several trainings into one new folder), so it is removed only when left empty.
        if resume is None and ctx.main and not any(run_dir.glob("fold*/last.pt")):
            shutil.rmtree(run_dir, ignore_errors=True)
            if not out_existed:
                with contextlib.suppress(OSError):
                    os.rmdir(cfg.out)  # not empty: another run's files, or a cache others may be reading
        raise
    if ctx.main:
        for cb in callbacks:
            cb.on_run_end(run_dir, cfg, fold_ids, summaries)
    return run_dir

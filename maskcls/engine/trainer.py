"""train(cfg): one loop for every task, on person-held-out folds.

The task only decides which heads the model has and which index columns feed them
(models.TASK_HEADS); sampling, losses, validation, checkpoints and resume are shared.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch.utils.data import DataLoader

from maskcls import io, labels
from maskcls.config import Config
from maskcls.data import assign_folds, load_folds, save_folds
from maskcls.data.cache import cached_source
from maskcls.data.dataset import FaceDataset, seed_worker
from maskcls.data.sampling import BalancedSampler, ShardSampler
from maskcls.data.splits import apply_folds
from maskcls.data.table import load_table
from maskcls.data.transforms import build_augment
from maskcls.engine import distributed
from maskcls.engine.callbacks import Callback, ConsoleCallback, WandbCallback
from maskcls.engine.inference import autocast, infer
from maskcls.engine.losses import LOSSES, soft_targets
from maskcls.engine.metrics import evaluate, plot_confusion
from maskcls.errors import MaskclsError
from maskcls.models import build_model, check_backbone, save_checkpoint, task_heads
from maskcls.runs import new_run_dir

console = Console()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise MaskclsError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


def auto_workers(device: torch.device) -> int:
    cpus = os.cpu_count() or 1
    if device.type == "cuda":
        return min(8, cpus)
    # On a small CPU box the model needs the cores; decoding at reduced scale is cheap.
    return 0 if cpus <= 2 else min(4, cpus // 2)


def cache_dir_of(cfg, run_dir: Path) -> Path:
    """cfg.cache_dir, or a cache/ folder beside the run directories (shared by every run there)."""
    return Path(cfg.cache_dir) if cfg.cache_dir else Path(run_dir).parent / "cache"


def seed_everything(*seed: int) -> None:
    s = int(np.random.SeedSequence(list(seed)).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def build_folds(cfg, table: pd.DataFrame, run_dir: Path) -> pd.DataFrame:
    path = run_dir / "folds.csv"
    if path.exists():  # resume: the very same split
        folds = load_folds(path)
    elif cfg.folds_file:
        folds = load_folds(cfg.folds_file)
        save_folds(folds, path)
    else:
        folds = assign_folds(table, folds=cfg.folds, seed=cfg.seed)
        save_folds(folds, path)
    return folds


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    opt = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return opt(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(cfg, steps_per_epoch: int):
    """LR multiplier per optimizer step: warm-up, then cosine / step / exponential by epoch."""
    total = cfg.epochs * steps_per_epoch
    warm = min(cfg.warmup_epochs * steps_per_epoch, total - 1)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        epoch = step / steps_per_epoch
        if cfg.scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
        if cfg.scheduler == "step":
            return cfg.gamma ** int(epoch // cfg.step_size)
        if cfg.scheduler == "exponential":
            return cfg.exp_gamma ** int(epoch)
        return 1.0

    return factor


def mix_batch(x: torch.Tensor, targets: dict, cfg, gen: torch.Generator):
    """MixUp or CutMix (chosen at random when both are on) on images and soft targets."""
    modes = [m for m in ("mixup", "cutmix") if cfg[m] > 0]
    if not modes or torch.rand(1, generator=gen).item() < 0.5:
        return x, targets
    mode = modes[int(torch.randint(len(modes), (1,), generator=gen))]
    alpha = torch.tensor(float(cfg[mode]))
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(len(x), generator=gen).to(x.device)
    x = x.float()
    if mode == "mixup":
        x = lam * x + (1 - lam) * x[perm]
    else:
        h, w = x.shape[2:]
        ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
        y0, y1, x0, x1 = max(cy - ch // 2, 0), min(cy + ch // 2, h), max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, {k: lam * t + (1 - lam) * t[perm] for k, t in targets.items()}


class FoldTrainer:
    """Trains one fold: the loop, validation, checkpoints and resume."""

    def __init__(self, cfg, table: pd.DataFrame, fold: int, fold_dir: Path, callbacks: list[Callback]):
        self.cfg, self.fold, self.dir, self.callbacks = cfg, fold, fold_dir, callbacks
        self.heads = task_heads(cfg)
        self.ctx = distributed.setup(cfg.device)
        self.device = resolve_device(cfg.device)
        if self.ctx.active and self.device.type == "cuda":
            self.device = torch.device("cuda", self.ctx.local_rank)
        if cfg.batch_size % self.ctx.world:
            raise MaskclsError(f"--batch-size {cfg.batch_size} (global) must divide by {self.ctx.world} processes")
        self.amp = cfg.amp and self.device.type == "cuda"
        self.channels_last = cfg.channels_last and self.device.type == "cuda"
        self.train_df = table[table["fold"] != fold].reset_index(drop=True)
        self.val_df = table[(table["fold"] == fold) & ~table["pseudo"]].reset_index(drop=True)
        if self.val_df.empty or self.train_df.empty:
            raise MaskclsError(f"fold {fold} leaves an empty train or validation set")
        seed_everything(cfg.seed, fold)  # initialisation depends on the seed and fold only
        self.model = build_model(cfg, self.heads).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = self.model  # what training calls: the model itself, or its DDP wrapper
        if self.ctx.active:
            if cfg.sync_bn and self.device.type != "cuda":
                raise MaskclsError("--sync-bn needs CUDA (SyncBatchNorm has no CPU kernel); drop it on CPU")
            if cfg.sync_bn:
                self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            ids = [self.ctx.local_rank] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.workers = cfg.workers if cfg.workers >= 0 else auto_workers(self.device)
        self.train_loader = self._loader(self.train_df, train=True)
        self.val_loader = self._loader(self.val_df, train=False)
        self.steps_per_epoch = math.ceil(len(self.train_loader) / cfg.accum_steps)
        self.opt = build_optimizer(cfg, self.model)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_factor(cfg, self.steps_per_epoch))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp)
        self.loss = LOSSES[cfg.loss]
        self.start_epoch, self.best_score, self.best_epoch, self.history = 0, -1.0, -1, []
        self.finished = False

    def _loader(self, df: pd.DataFrame, train: bool) -> DataLoader:
        cfg = self.cfg
        y = df[list(self.heads)].to_numpy()
        augment = build_augment(cfg.augment, cfg.img_size, seed=cfg.seed) if train else None
        source = None
        if cfg.cache:
            source = cached_source(cache_dir_of(cfg, self.dir.parent), cfg.img_size, df["path"].tolist(), console)
        ds = FaceDataset(df["path"].tolist(), y, cfg.img_size, augment=augment, source=source)
        kw = dict(num_workers=self.workers, pin_memory=self.device.type == "cuda", worker_init_fn=seed_worker,
                  persistent_workers=self.workers > 0)  # fmt: skip
        if not train:  # each rank validates every world-th image; validate() gathers the whole fold
            self.val_idx = distributed.shard(len(ds), self.ctx)
            ds = torch.utils.data.Subset(ds, self.val_idx.tolist()) if self.ctx.active else ds
            return DataLoader(ds, batch_size=cfg.batch_size * 2, shuffle=False, **kw)
        balance_on = "class" if len(self.heads) > 1 else next(iter(self.heads))
        self.sampler = BalancedSampler(df[balance_on].to_numpy(), cfg.oversample, seed=cfg.seed + self.fold)
        drop_last = len(ds) > cfg.batch_size
        self.generator = torch.Generator()
        if self.ctx.active:  # this rank's slice of each global batch: the union is the 1-process draw
            self.sampler = ShardSampler(self.sampler, cfg.batch_size, self.ctx.rank, self.ctx.world, drop_last)
            batch, drop_last = cfg.batch_size // self.ctx.world, False
        else:
            batch = cfg.batch_size
        return DataLoader(ds, batch_size=batch, sampler=self.sampler, generator=self.generator, drop_last=drop_last,
                          **kw)  # fmt: skip

    # -- checkpoints -----------------------------------------------------------------------
    def _state(self, epoch: int) -> dict:
        # No RNG states: every epoch reseeds from (seed, fold, epoch), so a resumed run draws the
        # same batches, augmentations and mixes as an uninterrupted one without them.
        return dict(
            epoch=epoch, fold=self.fold, optimizer=self.opt.state_dict(), scheduler=self.sched.state_dict(),
            scaler=self.scaler.state_dict(), best_score=self.best_score, best_epoch=self.best_epoch,
            history=self.history, finished=self.finished,
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
        self.start_epoch = ckpt["epoch"] + 1
        self.best_score, self.best_epoch = ckpt["best_score"], ckpt["best_epoch"]
        self.history, self.finished = ckpt["history"], ckpt["finished"]
        console.print(f"  resuming fold {self.fold} after epoch {ckpt['epoch'] + 1} of {self.cfg.epochs}")

    # -- the loop ----------------------------------------------------------------------------
    def train_one_epoch(self, epoch: int, progress: Progress) -> float:
        cfg, model = self.cfg, self.net
        model.train()
        seed_everything(cfg.seed, self.fold, epoch)  # same batches and augmentations after a resume
        self.sampler.set_epoch(epoch)
        self.generator.manual_seed(cfg.seed * 1000 + self.fold * 100 + epoch)
        aug = self.train_loader.dataset.augment
        if aug is not None:  # each rank its own augmentation stream
            aug.set_random_seed(cfg.seed * 1000 + self.fold * 100 + epoch + 7919 * self.ctx.rank)
        mix_gen = torch.Generator().manual_seed(cfg.seed + epoch)
        weights = {h: cfg.loss_weights.get(h, 1.0) for h in self.heads}
        task = progress.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=len(self.train_loader), loss=float("nan"))
        total, n = 0.0, 0
        self.opt.zero_grad(set_to_none=True)
        for step, (x, y) in enumerate(self.train_loader):
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            targets = {h: soft_targets(y[:, i], h, n_cls, self.loss, cfg.label_smoothing)
                       for i, (h, n_cls) in enumerate(self.heads.items())}  # fmt: skip
            x, targets = mix_batch(x, targets, cfg, mix_gen)
            with autocast(self.device, self.amp):
                out = model(x)
            loss = sum(weights[h] * self.loss.criterion(out[h], targets[h], cfg.focal_gamma) for h in self.heads)
            if not self._all_finite(loss):
                last = self.dir / "last.pt"
                kept = f"the last good checkpoint is {last}" if last.exists() else "no epoch had finished yet"
                raise MaskclsError(
                    f"fold {self.fold} epoch {epoch + 1} step {step}: loss is {loss.item()}, stopped; {kept} "
                    "(try a lower --lr)"
                )
            self.scaler.scale(loss / cfg.accum_steps).backward()
            if (step + 1) % cfg.accum_steps == 0 or step + 1 == len(self.train_loader):
                self.scaler.step(self.opt)
                self.scaler.update()
                self.opt.zero_grad(set_to_none=True)
                self.sched.step()
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

    def validate(self) -> tuple[dict, dict]:
        probs = infer(self.model, self.val_loader, self.device, self.amp)
        probs = distributed.gather(self.val_idx, probs, len(self.val_df))  # the whole fold, on every rank
        targets = {h: self.val_df[h].to_numpy() for h in [*self.heads, "class"]}
        return probs, evaluate(probs, targets)

    def fit(self) -> dict:
        self.resume()
        if not self.ctx.main:  # rank 0 alone writes checkpoints, logs, plots and wandb
            self.callbacks = []
        for cb in self.callbacks:
            cb.on_fold_start(self.fold, self.dir, self.cfg)
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn()]  # fmt: skip
        with Progress(*columns, console=console, transient=True, disable=not self.ctx.main) as progress:
            for epoch in range(self.start_epoch, self.cfg.epochs):
                if self.finished:
                    break
                t0 = time.time()
                train_loss = self.train_one_epoch(epoch, progress)
                probs, metrics = self.validate()
                improved = metrics["score"] > self.best_score
                if improved:
                    self.best_score, self.best_epoch = metrics["score"], epoch
                row = {"epoch": epoch, "train_loss": train_loss, "score": metrics["score"],
                       "lr": self.opt.param_groups[0]["lr"], "seconds": time.time() - t0, "best": improved,
                       **{f"{h}_f1": m["f1"] for h, m in metrics.items() if isinstance(m, dict)},
                       **{f"{h}_acc": m["acc"] for h, m in metrics.items() if isinstance(m, dict)}}  # fmt: skip
                self.history.append(row)
                patience = self.cfg.patience
                self.finished = epoch + 1 == self.cfg.epochs or bool(patience and epoch - self.best_epoch >= patience)
                if improved and self.ctx.main:
                    self._save_best(epoch, probs, metrics)
                if self.ctx.main:
                    save_checkpoint(self.dir / "last.pt", self.model, self.cfg, self.heads, **self._state(epoch))
                    io.write_csv(self.dir / "history.csv", pd.DataFrame(self.history))
                for cb in self.callbacks:
                    cb.on_epoch_end(self.fold, row)
        distributed.barrier()  # rank 0 has written metrics.json
        summary = json.loads((self.dir / "metrics.json").read_text())
        for cb in self.callbacks:
            cb.on_fold_end(self.fold, summary)
        return summary

    def _save_best(self, epoch: int, probs: dict, metrics: dict) -> None:
        save_checkpoint(self.dir / "best.pt", self.model, self.cfg, self.heads, epoch=epoch, fold=self.fold,
                        best_score=metrics["score"])  # fmt: skip
        io.write_csv(self.dir / "oof.csv", oof_table(self.val_df, probs, self.fold))
        io.write_json(self.dir / "metrics.json", {"fold": self.fold, "best_epoch": epoch,
                                                  "best_score": metrics["score"], "metrics": metrics})  # fmt: skip
        for head, p in probs.items():
            names = labels.task_classes(head, self.cfg.age_upper)
            plot_confusion(self.val_df[head].to_numpy(), p.argmax(1), names, self.dir / f"confusion_{head}.png",
                           f"fold {self.fold} {head}, epoch {epoch + 1}")  # fmt: skip


def oof_table(df: pd.DataFrame, probs: dict, fold: int) -> pd.DataFrame:
    """Out-of-fold rows: path, person, labels, fold, one probability column per class of each head."""
    out = df[["path", "person", "mask", "gender", "age", "class"]].copy()
    out["fold"] = fold
    for head, p in probs.items():
        for k in range(p.shape[1]):
            out[f"{head}_{k}"] = p[:, k]
    return out


def _train_folds(cfg, table: pd.DataFrame, run_dir: Path, callbacks, new: bool) -> tuple[list[dict], list[int]]:
    ctx = distributed.setup(cfg.device)
    if new and ctx.main:
        io.write_json(run_dir / "config.json", cfg)
        heads = task_heads(cfg)
        io.write_json(run_dir / "label_map.json", {h: labels.task_classes(h, cfg.age_upper) for h in heads})
    console.print(f"run [bold]{run_dir}[/] task {cfg.task} backbone {cfg.backbone} img {cfg.img_size}")
    if ctx.active:
        backend = torch.distributed.get_backend()
        console.print(f"DistributedDataParallel: {ctx.world} processes ({backend}), global batch {cfg.batch_size} = "
                      f"{ctx.world} x {cfg.batch_size // ctx.world}")  # fmt: skip
    real = table[~table["pseudo"]]
    folds = build_folds(cfg, real, run_dir) if ctx.main else None
    distributed.barrier()
    folds = folds if ctx.main else load_folds(run_dir / "folds.csv")
    pseudo = table[table["pseudo"]].assign(fold=-1)  # fold -1: in every training set, never validated
    table = pd.concat([apply_folds(real, folds, str(run_dir / "folds.csv")), pseudo], ignore_index=True)
    fold_ids = [int(k) for k in sorted(folds["fold"].unique())] if cfg.fold == "all" else [int(cfg.fold)]
    callbacks = callbacks if callbacks is not None else [ConsoleCallback(console)]
    if cfg.wandb:
        callbacks = [*callbacks, WandbCallback(cfg.wandb_project, run_dir)]
    summaries = []
    for k in fold_ids:
        try:
            summaries.append(FoldTrainer(cfg, table, k, run_dir / f"fold{k}", callbacks).fit())
        except torch.cuda.OutOfMemoryError:
            raise MaskclsError(
                f"CUDA out of memory at batch size {cfg.batch_size}: lower --batch-size "
                "(or keep the effective batch with accum_steps)"
            ) from None
    return summaries, fold_ids


def train(cfg: Config, resume: Path | None = None, callbacks: list[Callback] | None = None) -> Path:
    """Train every fold the config asks for; returns the run directory."""
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.json").is_file():
            raise MaskclsError(f"{run_dir}: not a run directory (no config.json)")
        cfg = Config(json.loads((run_dir / "config.json").read_text()))
    else:
        if cfg.data is None:
            raise MaskclsError("no data folder: pass --data DIR (the folder holding train/ and eval/)")
    # Bad input fails before a run directory exists, so a typo leaves no empty run behind.
    check_backbone(cfg.backbone)
    table = load_table(cfg)
    if cfg.extra:
        console.print(f"pseudo-labelled rows from {cfg.extra}: {int(table['pseudo'].sum())} (train only)")
    n_persons = table.loc[~table["pseudo"], "person"].nunique()
    if cfg.folds > n_persons:
        raise MaskclsError(f"--folds {cfg.folds} is more than the {n_persons} persons in {cfg.data}")
    ctx = distributed.setup(cfg.device)
    console.quiet = not ctx.main
    if resume is None:
        out_existed = Path(cfg.out).exists()
        run_dir = new_run_dir(cfg.out, cfg.name or f"{cfg.task}-{cfg.backbone}") if ctx.main else None
        run_dir = Path(distributed.broadcast(str(run_dir)))
        try:
            summaries, fold_ids = _train_folds(cfg, table, run_dir, callbacks, new=True)
        except BaseException:
            # A run that never finished an epoch holds nothing to resume: remove it (and an --out
            # folder this call made), so a fixed command gets the same name, not a `-2` suffix.
            if ctx.main and not any(run_dir.glob("fold*/last.pt")):
                shutil.rmtree(run_dir, ignore_errors=True)
                if not out_existed:
                    shutil.rmtree(cfg.out, ignore_errors=True)
            raise
    else:
        summaries, fold_ids = _train_folds(cfg, table, run_dir, callbacks, new=False)
    if not ctx.main:
        return run_dir
    oof = pd.concat([pd.read_csv(run_dir / f"fold{k}" / "oof.csv") for k in fold_ids], ignore_index=True)
    io.write_csv(run_dir / "oof.csv", oof)
    io.write_json(run_dir / "summary.json", {"folds": [int(k) for k in fold_ids],
                  "scores": [s["best_score"] for s in summaries],
                  "mean_score": float(np.mean([s["best_score"] for s in summaries]))})  # fmt: skip
    return run_dir

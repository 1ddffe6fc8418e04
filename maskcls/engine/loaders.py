"""A fold's DataLoaders: the shared dataset, class-balanced and seeded sampling, DDP shards.

Every rank builds the same loaders; under torchrun each takes its slice of every global batch
(training) or every world-th image (validation, gathered again by the trainer).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from torch.utils.data import DataLoader

from maskcls.data.cache import cached_source
from maskcls.data.dataset import FaceDataset, seed_worker
from maskcls.data.sampling import BalancedSampler, ShardSampler
from maskcls.data.transforms import build_augment
from maskcls.engine import distributed


def dataset(cfg, df: pd.DataFrame, kinds: dict, train: bool, cache_dir: Path | None, console: Console) -> FaceDataset:
    """The heads' label columns, then the group a mixer's `rare` partner rule draws by: the age group
    where the model has an age head, else the task's own label."""
    group = "age" if "age" in kinds else next(iter(kinds.values())).column
    y = df[[*(k.column for k in kinds.values()), group]].to_numpy()
    augment = build_augment(cfg.augment, cfg.img_size, seed=cfg.seed) if train else None
    source = cached_source(cache_dir, cfg.img_size, df["path"].tolist(), console) if cache_dir is not None else None
    mask_on = df["mask"].isin([0, 1]).to_numpy()  # worn or pulled down: a mask to restyle (-1: unknown)
    return FaceDataset(df["path"].tolist(), y, cfg.img_size, augment=augment, source=source, mask_on=mask_on)


def _options(workers: int, device: torch.device) -> dict:
    return dict(num_workers=workers, pin_memory=device.type == "cuda", worker_init_fn=seed_worker,
                persistent_workers=workers > 0)  # fmt: skip


def train_loader(cfg, ds: FaceDataset, balance_on: np.ndarray, key: int, workers: int, device: torch.device,
                 ctx: distributed.Context) -> tuple[DataLoader, BalancedSampler, torch.Generator]:  # fmt: skip
    """Batches drawn by the class-balanced sampler (seeded by seed and fold); the sampler and generator
    are reseeded every epoch by the trainer, so a resumed run draws the same batches."""
    sampler = BalancedSampler(balance_on, cfg.oversample, seed=cfg.seed + key)
    drop_last = len(ds) > cfg.batch_size
    generator = torch.Generator()
    batch = cfg.batch_size
    if ctx.active:  # this rank's slice of each global batch: the union is the 1-process draw
        sampler = ShardSampler(sampler, cfg.batch_size, ctx.rank, ctx.world, drop_last)
        batch, drop_last = cfg.batch_size // ctx.world, False
    loader = DataLoader(ds, batch_size=batch, sampler=sampler, generator=generator, drop_last=drop_last,
                        **_options(workers, device))  # fmt: skip
    return loader, sampler, generator


def val_loader(cfg, ds: FaceDataset, workers: int, device: torch.device,
               ctx: distributed.Context) -> tuple[DataLoader, np.ndarray]:  # fmt: skip
    """In order; each rank validates every world-th image (`idx`), the trainer gathers the whole fold."""
    idx = distributed.shard(len(ds), ctx)
    ds = torch.utils.data.Subset(ds, idx.tolist()) if ctx.active else ds
    return DataLoader(ds, batch_size=cfg.batch_size * 2, shuffle=False, **_options(workers, device)), idx

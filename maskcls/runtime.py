"""Where and how a job runs: the device, DataLoader workers, seeding, the shared image cache folder."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from maskcls.errors import MaskclsError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise MaskclsError("--device cuda asked for, but torch sees no CUDA device")
    if name == "mps" and not torch.backends.mps.is_available():
        raise MaskclsError("--device mps asked for, but this machine has no Apple GPU (MPS)")
    return torch.device(name)


def auto_workers(device: torch.device) -> int:
    cpus = os.cpu_count() or 1
    if device.type == "cuda":
        return min(8, cpus)
    # On a small CPU box the model needs the cores; decoding at reduced scale is cheap.
    return 0 if cpus <= 2 else min(4, cpus // 2)


def seed_everything(*seed: int) -> None:
    """Seed Python, numpy and torch from a tuple (seed, fold, epoch, ...): one stream per tuple."""
    s = int(np.random.SeedSequence(list(seed)).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def cache_dir_of(cfg, runs_dir: Path) -> Path:
    """cfg.cache_dir, or a cache/ folder beside the run directories (shared by every run there)."""
    return Path(cfg.cache_dir) if cfg.cache_dir else Path(runs_dir) / "cache"

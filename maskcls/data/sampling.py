"""Sampling shared by every task: class-balanced draws, and their per-rank shards under DDP."""

from __future__ import annotations

import numpy as np
from torch.utils.data import Sampler


def balanced_weights(labels: np.ndarray, strength: float) -> np.ndarray:
    """Per-sample weights count(label)^-strength, normalised to sum 1.

    strength 0 keeps the natural mix, 1 makes every label equally likely per epoch;
    values between interpolate on a log scale (a common, gentler compromise).
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"oversampling strength must be in [0, 1] (got {strength})")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    w = counts[inverse].astype(np.float64) ** -strength
    return w / w.sum()


class BalancedSampler(Sampler[int]):
    """Draws len(labels) indices per epoch with replacement, weighted by balanced_weights.

    Deterministic given (seed, epoch): call set_epoch before each epoch, so a resumed run
    draws the same indices it would have drawn without the interruption.
    """

    def __init__(self, labels: np.ndarray, strength: float, seed: int, num_samples: int | None = None):
        self.weights = balanced_weights(np.asarray(labels), strength)
        self.num_samples = num_samples or len(labels)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        return iter(rng.choice(len(self.weights), size=self.num_samples, replace=True, p=self.weights).tolist())

    def __len__(self) -> int:
        return self.num_samples


class ShardSampler(Sampler[int]):
    """One rank's share of a base sampler under DistributedDataParallel.

    The base sampler's draw is cut into global batches of `global_batch`; this rank takes its
    `global_batch // world` consecutive indices of each. So the union over ranks is exactly the
    single-process draw, batch by batch: with the same seed and global batch, every optimizer
    step sees the same images as a one-process run (augmentation draws differ per rank).
    """

    def __init__(self, base: Sampler[int], global_batch: int, rank: int, world: int, drop_last: bool):
        self.base, self.rank, self.world, self.drop_last = base, rank, world, drop_last
        self.global_batch, self.local_batch = global_batch, global_batch // world

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def _batches(self, n: int) -> int:
        return n // self.global_batch if self.drop_last else -(-n // self.global_batch)

    def __iter__(self):
        idx = list(self.base)
        n = self._batches(len(idx)) * self.global_batch
        idx = (idx * (1 + n // max(len(idx), 1)))[:n]  # the last partial batch is filled from the start
        lo, hi = self.rank * self.local_batch, (self.rank + 1) * self.local_batch
        return iter([i for start in range(0, n, self.global_batch) for i in idx[start + lo : start + hi]])

    def __len__(self) -> int:
        return self._batches(len(self.base)) * self.local_batch

"""Batched inference: class probabilities per head, with optional horizontal-flip TTA."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled and device.type == "cuda")


@torch.no_grad()
def infer(model, loader: DataLoader, device: torch.device, kinds: dict, amp: bool = False, tta: bool = False,
          progress=None):  # fmt: skip
    """{head: (N, classes) float32 probabilities} in loader order; kinds (engine/kinds.py) turn logits into them."""
    model.eval()
    chunks: dict[str, list[np.ndarray]] = {}
    channels_last = device.type == "cuda"
    for x, _ in loader:
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            out = {k: kinds[k].probs(v) for k, v in model(x).items()}
            if tta:  # faces are left-right symmetric for every label here
                flipped = model(torch.flip(x, dims=[3]))
                out = {k: (v + kinds[k].probs(flipped[k])) / 2 for k, v in out.items()}
        for k, v in out.items():
            chunks.setdefault(k, []).append(v.cpu().numpy())
        if progress is not None:
            progress(len(x))
    return {k: np.concatenate(v) for k, v in chunks.items()}

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
    """{head: (N, classes) float32 probabilities} in loader order; kinds (engine/kinds.py) turn logits into them.

    A kind that knows years (ordinal, regression) also gives "<head>_cum": (N, len(AGES)) P(age >= a).
    """
    model.eval()
    chunks: dict[str, list[np.ndarray]] = {}
    channels_last = device.type == "cuda"
    for x, _ in loader:
        x = x.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            out = outputs(model(x), kinds)
            if tta:  # faces are left-right symmetric for every label here
                flipped = outputs(model(torch.flip(x, dims=[3])), kinds)
                out = {k: (v + flipped[k]) / 2 for k, v in out.items()}
        for k, v in out.items():
            chunks.setdefault(k, []).append(v.cpu().numpy())
        if progress is not None:
            progress(len(x))
    return {k: np.concatenate(v) for k, v in chunks.items()}


def outputs(logits: dict, kinds: dict) -> dict:
    out = {}
    for head, v in logits.items():
        out[head] = kinds[head].probs(v)
        if hasattr(kinds[head], "cumulative"):
            out[f"{head}_cum"] = kinds[head].cumulative(v)
    return out

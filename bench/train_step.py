"""Training images/s with batches from the real loader versus batches already in memory.

    python bench/train_step.py [--data DIR] [--backbone resnet18] [--size 192 144] [--steps 20]

The in-memory figure is the model-only limit (no decoding, no augmentation, no copies);
the ratio says how much of it the loader keeps (target >= 0.9). The loader is maskcls's
own: warm decode-once cache, light augmentation, automatic workers, pinned memory on CUDA.
Prints a table and writes JSON (device, backbone, size, AMP included).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader

from maskcls import config
from maskcls.config import ROOT
from maskcls.data import scan_train
from maskcls.data.cache import cached_source
from maskcls.data.dataset import FaceDataset
from maskcls.data.transforms import build_augment
from maskcls.engine.inference import autocast
from maskcls.engine.kinds import build_heads, widths
from maskcls.engine.optim import build_optimizer
from maskcls.models import build_model
from maskcls.runtime import auto_workers, resolve_device


def timed_steps(model, opt, scaler, batches, device, amp: bool, channels_last: bool, steps: int) -> float:
    """images/s over `steps` optimizer steps after two warm-up steps."""
    model.train()
    n, t0 = 0, 0.0
    for step in range(steps + 2):
        if step == 2:
            if device.type == "cuda":
                torch.cuda.synchronize()
            n, t0 = 0, time.perf_counter()
        x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            out = model(x)
        loss = sum(torch.nn.functional.cross_entropy(out[h].float(), y[:, i]) for i, h in enumerate(out))
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        n += len(x)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "maskproxy-dev")
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--size", type=int, nargs=2, default=[192, 144])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, default=Path("bench/results/train_step.json"))
    args = ap.parse_args()
    size = tuple(args.size)
    device = resolve_device(args.device)
    amp, channels_last = device.type == "cuda", device.type == "cuda"
    table = scan_train(args.data).table
    need = args.batch_size * (args.steps + 2)
    table = table.sample(n=min(len(table), need), random_state=0) if len(table) > need else table
    paths = table["path"].tolist()
    source = cached_source(Path(tempfile.mkdtemp(prefix="maskcls-bench-")), size, paths)  # warm from here on
    ds = FaceDataset(paths, table[["mask", "gender", "age"]].to_numpy(), size,
                     augment=build_augment("light", size, seed=0), source=source)  # fmt: skip
    workers = auto_workers(device)
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=workers, drop_last=True,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0)  # fmt: skip

    def forever(it_factory):
        while True:
            yield from it_factory()

    cfg = config.resolve("joint", flags={"backbone": args.backbone, "img_size": list(size)})
    results = {}
    for name in ("in memory (model-only limit)", "maskcls loader"):
        torch.manual_seed(0)
        model = build_model(cfg, widths(build_heads(cfg))).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = build_optimizer(cfg, model)
        scaler = torch.amp.GradScaler(device.type, enabled=amp)
        if name.startswith("in memory"):
            cached = [(x.to(device), y.to(device)) for x, y in list(loader)[:4]]
            batches = forever(lambda c=cached: iter(c))
        else:
            batches = forever(lambda: iter(loader))
        results[name] = timed_steps(model, opt, scaler, batches, device, amp, channels_last, args.steps)
    limit = results["in memory (model-only limit)"]
    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "backbone": args.backbone, "size": list(size), "batch_size": args.batch_size, "amp": amp,
        "channels_last": channels_last, "workers": workers,
        "images_per_s": {k: round(v, 1) for k, v in results.items()},
        "ratio_loader_vs_limit": round(results["maskcls loader"] / limit, 3),
    }  # fmt: skip
    t = Table(title=f"bench/train_step.py: {args.backbone} {size[0]}x{size[1]} on {result['device']}, AMP {amp}")
    t.add_column("batches from")
    t.add_column("train images/s", justify="right")
    t.add_column("of limit", justify="right")
    for k, v in results.items():
        t.add_row(k, f"{v:.1f}", f"{v / limit:.3f}")
    Console().print(t)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

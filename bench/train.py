"""Train and predict throughput (images/s) of one backbone at one size, through maskcls's own loader.

    python bench/train.py --backbone resnet18 --img-size 192 144 [--data DIR] [--steps 20] [--json out.json]

Without --data a demo set is generated in a temp folder. Prints a table and writes JSON.
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
from train_step import timed_steps  # bench/ is on sys.path when run as `python bench/train.py`

from maskcls import config, weights
from maskcls.data import scan_train
from maskcls.data.dataset import FaceDataset
from maskcls.data.transforms import build_augment
from maskcls.engine.inference import infer
from maskcls.engine.kinds import build_heads, widths
from maskcls.engine.optim import build_optimizer
from maskcls.models import build_model
from maskcls.runtime import auto_workers, resolve_device


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--img-size", type=int, nargs="+", default=[192, 144])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20, help="timed training steps (after 2 warm-up steps)")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, default=Path("bench/results/train.json"))
    args = ap.parse_args()
    size = args.img_size * 2 if len(args.img_size) == 1 else args.img_size

    data = args.data
    if data is None:
        from maskcls.demo import make_demo

        data = make_demo(Path(tempfile.mkdtemp()) / "demo", train_persons=40, eval_persons=5)
    table = scan_train(data).table
    cfg = config.resolve(
        "joint",
        flags={
            "backbone": args.backbone,
            "img_size": size,
            "batch_size": args.batch_size,
            "pretrained": weights.find_local(args.backbone) is not None,
        },
    )
    device = resolve_device(args.device)
    kinds = build_heads(cfg)
    model = build_model(cfg, widths(kinds)).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = build_optimizer(cfg, model)
    workers = auto_workers(device)
    ds = FaceDataset(table["path"].tolist(), table[["mask", "gender", "age"]].to_numpy(), size,
                     augment=build_augment("light", size, seed=0))  # fmt: skip
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=workers, drop_last=True,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0)  # fmt: skip
    amp = channels_last = device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=amp)

    def batches():
        while True:
            yield from loader

    train_ips = timed_steps(model, opt, scaler, batches(), device, amp, channels_last, args.steps)

    pred_ds = FaceDataset(table["path"].tolist()[: args.batch_size * 8], None, size)
    pred_loader = DataLoader(pred_ds, batch_size=args.batch_size * 2, num_workers=workers)
    t0 = time.perf_counter()
    infer(model, pred_loader, device, kinds, amp=amp)
    predict_ips = len(pred_ds) / (time.perf_counter() - t0)

    result = {"backbone": args.backbone, "img_size": size, "batch_size": args.batch_size, "device": str(device),
              "torch_threads": torch.get_num_threads(), "workers": workers, "amp": amp,
              "train_images_per_s": round(train_ips, 1), "predict_images_per_s": round(predict_ips, 1)}  # fmt: skip
    t = Table(title=f"bench/train.py: {args.backbone} at {size[0]}x{size[1]} on {device}")
    t.add_column("what")
    t.add_column("value", justify="right")
    for k, v in result.items():
        t.add_row(k, str(v))
    Console().print(t)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

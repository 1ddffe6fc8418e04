"""Train and predict throughput (images/s) of backbones at one size, through maskcls's own loader,
each plain, in channels_last memory format, and compiled with torch.compile: side by side, one run.

    python bench/train.py --backbones tv/mobilenet_v2,resnet18 --img-size 128 96 [--data DIR] [--steps 20]
                          [--modes plain,channels_last,compile] [--json bench/results/train.json]

Without --data a demo set is generated in a temp folder. Prints a table and writes JSON. A tv/
backbone starts from its local ImageNet weights when there are some (speed does not depend on it).
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

MODES = ("plain", "channels_last", "compile")


def measure(backbone: str, mode: str, table, size, batch_size: int, steps: int, device) -> dict:
    flags = {"backbone": backbone, "img_size": size, "batch_size": batch_size,
             "pretrained": weights.find_local(backbone) is not None}  # fmt: skip
    cfg = config.resolve("joint", flags=flags)
    kinds = build_heads(cfg)
    model = build_model(cfg, widths(kinds)).to(device)
    channels_last = mode == "channels_last" or (device.type == "cuda" and mode != "plain")
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = build_optimizer(cfg, model)
    net = torch.compile(model) if mode == "compile" else model
    workers = auto_workers(device)
    ds = FaceDataset(table["path"].tolist(), table[["mask", "gender", "age"]].to_numpy(), size,
                     augment=build_augment("light", size, seed=0))  # fmt: skip
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0)  # fmt: skip
    amp = device.type == "cuda"
    scaler = torch.amp.GradScaler(device.type, enabled=amp)

    def batches():
        while True:
            yield from loader

    t0 = time.perf_counter()
    train_ips = timed_steps(net, opt, scaler, batches(), device, amp, channels_last, steps)
    train_wall = time.perf_counter() - t0  # includes compilation for mode "compile"
    pred_ds = FaceDataset(table["path"].tolist()[: batch_size * 8], None, size)
    pred_loader = DataLoader(pred_ds, batch_size=batch_size * 2, num_workers=workers)
    net.eval()
    infer(net, pred_loader, device, kinds, amp=amp)  # warm-up (and, compiled, the eval graph)
    t0 = time.perf_counter()
    infer(net, pred_loader, device, kinds, amp=amp)
    predict_ips = len(pred_ds) / (time.perf_counter() - t0)
    return {"backbone": backbone, "mode": mode, "img_size": size, "batch_size": batch_size, "device": str(device),
            "torch_threads": torch.get_num_threads(), "workers": workers, "amp": amp,
            "train_images_per_s": round(train_ips, 1), "predict_images_per_s": round(predict_ips, 1),
            "train_wall_s": round(train_wall, 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", default="tv/mobilenet_v2,resnet18")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--img-size", type=int, nargs="+", default=[128, 96])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=20, help="timed training steps (after 2 warm-up steps)")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path, default=Path("bench/results/train.json"))
    args = ap.parse_args()
    size = args.img_size * 2 if len(args.img_size) == 1 else args.img_size
    modes = args.modes.split(",")
    unknown = set(modes) - set(MODES)
    if unknown:
        ap.error(f"unknown modes {sorted(unknown)}; known: {', '.join(MODES)}")

    data = args.data
    if data is None:
        from maskcls.demo import make_demo

        data = make_demo(Path(tempfile.mkdtemp()) / "demo", train_persons=40, eval_persons=5)
    table = scan_train(data).table
    device = resolve_device(args.device)
    rows = []
    for backbone in args.backbones.split(","):
        for mode in modes:
            torch.manual_seed(0)
            try:
                rows.append(measure(backbone, mode, table, size, args.batch_size, args.steps, device))
            except Exception as e:  # torch.compile needs a C compiler and may fail on a machine: a row says so
                rows.append({"backbone": backbone, "mode": mode, "error": f"{type(e).__name__}: {str(e)[:120]}"})
    t = Table(title=f"bench/train.py: {size[0]}x{size[1]}, batch {args.batch_size}, {device}, one run")
    for c in ("backbone", "mode", "train img/s", "predict img/s", "train wall s (20 steps, incl. compile)"):
        t.add_column(c, justify="left" if c in ("backbone", "mode") else "right")
    for r in rows:
        if "error" in r:
            t.add_row(r["backbone"], r["mode"], "-", "-", r["error"])
        else:
            t.add_row(r["backbone"], r["mode"], str(r["train_images_per_s"]), str(r["predict_images_per_s"]),
                      str(r["train_wall_s"]))  # fmt: skip
    Console().print(t)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""CPU inference speed of one model three ways: eager PyTorch, TorchScript and ONNX Runtime, side by side.

    .venv/bin/python bench/export.py [--backbone tv/mobilenet_v2] [--img-size 128 96] [--seconds 5]

The model is what `maskcls export` writes for a joint run (three heads, probabilities out, uint8 in);
its weights are random (speed does not depend on them). Images/s at batch 1 and batch 32, each figure
the best of three timed windows after a warm-up. Prints a table; writes bench/results/export.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent


def images_per_second(run, x: np.ndarray, seconds: float) -> float:
    for _ in range(3):  # warm-up: allocators, ORT's first-run graph work
        run(x)
    best = 0.0
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            run(x)
            n += len(x)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="tv/mobilenet_v2")
    ap.add_argument("--img-size", type=int, nargs=2, default=[128, 96])
    ap.add_argument("--seconds", type=float, default=6.0, help="timed seconds per figure")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "export.json")
    args = ap.parse_args()

    import maskcls.data  # noqa: F401  (fills the registries the defaults are checked against)
    import maskcls.engine  # noqa: F401
    from maskcls.config import Config, defaults
    from maskcls.engine.kinds import build_heads, widths
    from maskcls.models import build_model, save_checkpoint
    from maskcls.post.export import Exported, build_ensemble, export

    torch.manual_seed(0)
    cfg = Config({**defaults(), "backbone": args.backbone, "pretrained": False, "img_size": list(args.img_size)})
    heads = widths(build_heads(cfg))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "model.pt"
        save_checkpoint(ckpt, build_model(cfg, heads), cfg, heads)
        eager = build_ensemble([ckpt]).module

        def run_eager(x: np.ndarray):
            with torch.no_grad():
                return eager(torch.from_numpy(x))

        runners = {"eager PyTorch": run_eager}
        for fmt, name in (("torchscript", "model.torchscript"), ("onnx", "model.onnx")):
            export([ckpt], fmt, Path(tmp) / name)
            runners["TorchScript" if fmt == "torchscript" else "ONNX Runtime (CPU)"] = Exported(Path(tmp) / name).run
        h, w = args.img_size
        for batch in (1, 32):
            x = np.random.default_rng(0).integers(0, 256, (batch, 3, h, w), dtype=np.uint8)
            for name, run in runners.items():
                speed = images_per_second(run, x, args.seconds)
                rows.append({"runtime": name, "batch": batch, "images_per_s": round(speed, 1)})
    base = {r["batch"]: r["images_per_s"] for r in rows if r["runtime"] == "eager PyTorch"}
    table = Table(title=f"{args.backbone} at {h}x{w}, CPU, {torch.get_num_threads()} torch threads")
    for c in ("runtime", "batch", "images/s", "vs eager"):
        table.add_column(c, justify="left" if c == "runtime" else "right")
    for r in rows:
        r["vs_eager"] = round(r["images_per_s"] / base[r["batch"]], 2)
        table.add_row(r["runtime"], str(r["batch"]), f"{r['images_per_s']:.1f}", f"{r['vs_eager']:.2f}x")
    Console().print(table)
    report = {"backbone": args.backbone, "img_size": args.img_size, "cpus": os.cpu_count(),
              "torch": torch.__version__, "rows": rows}  # fmt: skip
    import onnxruntime

    report["onnxruntime"] = onnxruntime.__version__
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    Console().print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Loader throughput: the contest baseline's per-item pipeline versus maskcls's cached loader.

    python bench/loader.py [--data ../shared/data/maskproxy-dev] [--size 224 224] [--images 1500] [--workers 2]

(a) baseline: PIL open of each 384x512 JPEG, torchvision Resize + ToTensor + Normalize, per item
    (what the contest's baseline code does every epoch);
(b) maskcls: the same images through FaceDataset, cold (first pass: decode, resize, write the
    cache) and warm (memory-mapped uint8 arrays; normalisation happens in the model, on the device).
Both go through a DataLoader with the same workers and batch size. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from maskcls.config import ROOT
from maskcls.data import scan_train
from maskcls.data.cache import CachedSource, ImageCache
from maskcls.data.dataset import FaceDataset
from maskcls.data.transforms import build_augment


class BaselineDataset(Dataset):
    def __init__(self, paths, size):
        self.paths = paths
        self.tf = T.Compose([T.Resize(size), T.ToTensor(), T.Normalize((0.548, 0.504, 0.479), (0.237, 0.247, 0.246))])

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.tf(Image.open(self.paths[i]).convert("RGB")), 0


def throughput(ds, workers: int, batch_size: int) -> float:
    loader = DataLoader(ds, batch_size=batch_size, num_workers=workers, shuffle=False)
    t0, n = time.perf_counter(), 0
    for x, _ in loader:
        n += len(x)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "maskproxy-dev")
    ap.add_argument("--size", type=int, nargs=2, default=[224, 224])
    ap.add_argument("--images", type=int, default=1500, help="images per pass (the first N of the train index)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--json", type=Path, default=Path("bench/results/loader.json"))
    args = ap.parse_args()
    size = tuple(args.size)
    paths = scan_train(args.data).table["path"].tolist()[: args.images]
    cache_dir = Path(tempfile.mkdtemp(prefix="maskcls-bench-cache-"))
    try:
        baseline = throughput(BaselineDataset(paths, size), args.workers, args.batch_size)
        cache = ImageCache(cache_dir, size)
        t0 = time.perf_counter()
        slots, crcs = cache.ensure(paths)
        cold = len(paths) / (time.perf_counter() - t0)
        warm = throughput(
            FaceDataset(paths, None, size, source=CachedSource(cache, slots, crcs)), args.workers, args.batch_size
        )
        aug = build_augment("light", size, seed=0)
        warm_aug = throughput(FaceDataset(paths, None, size, augment=aug, source=CachedSource(cache, slots, crcs)),
                              args.workers, args.batch_size)  # fmt: skip
        nocache = throughput(FaceDataset(paths, None, size), args.workers, args.batch_size)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    result = {
        "data": str(args.data), "images": len(paths), "size": list(size), "workers": args.workers,
        "torch_threads": torch.get_num_threads(), "samples_per_s": {
            "baseline (PIL + Resize/ToTensor/Normalize)": round(baseline, 1),
            "maskcls, no cache (reduced JPEG decode)": round(nocache, 1),
            "maskcls cache, cold first pass (decode + write)": round(cold, 1),
            "maskcls cache, warm": round(warm, 1),
            "maskcls cache, warm + light augmentation": round(warm_aug, 1),
        },
        "ratio_warm_vs_baseline": round(warm / baseline, 2),
        "ratio_warm_aug_vs_baseline": round(warm_aug / baseline, 2),
        "ratio_cold_vs_baseline": round(cold / baseline, 2),
    }  # fmt: skip
    t = Table(title=f"bench/loader.py: {len(paths)} images -> {size[0]}x{size[1]}, {args.workers} workers")
    t.add_column("pipeline")
    t.add_column("samples/s", justify="right")
    t.add_column("x baseline", justify="right")
    for name, v in result["samples_per_s"].items():
        t.add_row(name, f"{v:.0f}", f"{v / baseline:.2f}")
    Console().print(t)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

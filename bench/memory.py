"""RAM of the index plus the decode-once cache for a contest-sized set (4,500 persons x 7 images).

    python bench/memory.py [--persons 4500] [--size 64 48] [--keep DIR]

Generates small JPEGs in the contest layout (the pixels do not matter here; small files save disk),
indexes them, builds the cache, reads every image once through it, and reports the process's
private memory (RssAnon) against the memory-mapped file pages (RssFile, shared and reclaimable).
Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from maskcls.data import scan_train
from maskcls.data.cache import ImageCache

STEMS = ["mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal"]


def rss() -> dict[str, float]:
    """Resident memory in MB, split into private (anon) and file-backed pages."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def generate(root: Path, persons: int) -> None:
    rng = np.random.default_rng(0)
    images = root / "train" / "images"
    images.mkdir(parents=True)
    base = rng.integers(0, 255, (128, 96, 3), dtype=np.uint8)
    for p in range(persons):
        folder = images / f"{p:06d}_{'female' if p % 5 < 3 else 'male'}_Asian_{18 + p % 60}"
        folder.mkdir()
        for k, stem in enumerate(STEMS):
            img = np.roll(base, p * 7 + k, axis=1)
            cv2.imwrite(str(folder / f"{stem}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 80])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--persons", type=int, default=4500)
    ap.add_argument("--size", type=int, nargs=2, default=[64, 48])
    ap.add_argument("--keep", type=Path, default=None, help="generate here and keep it (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=Path("bench/results/memory.json"))
    args = ap.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="maskcls-mem-"))
    try:
        t0 = time.perf_counter()
        if not (root / "train").exists():
            generate(root, args.persons)
        gen_s = time.perf_counter() - t0
        start = rss()
        t0 = time.perf_counter()
        table = scan_train(root).table
        index_s = time.perf_counter() - t0
        after_index = rss()
        cache = ImageCache(root / "cache", args.size)
        t0 = time.perf_counter()
        slots, _ = cache.ensure(table["path"].tolist())
        cache_s = time.perf_counter() - t0
        total = 0
        for s in slots:  # every image once, as an epoch would
            total += int(cache.read(s)[0, 0, 0])
        after_read = rss()
        disk_mb = cache.data_path.stat().st_size / 2**20
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    result = {
        "images": len(table), "size": args.size, "cache_file_mb": round(disk_mb, 1),
        "seconds": {"generate": round(gen_s, 1), "index": round(index_s, 2), "cache_build": round(cache_s, 1)},
        "mb": {"start": start, "after_index": after_index, "after_epoch_through_cache": after_read},
        "private_mb_added_by_index_and_cache": round(after_read["RssAnon"] - start["RssAnon"], 1),
    }  # fmt: skip
    t = Table(
        title=f"bench/memory.py: {len(table)} images, cache at {args.size[0]}x{args.size[1]} ({disk_mb:.0f} MB file)"
    )
    for c in ("stage", "RSS MB", "private (anon) MB", "file-backed MB"):
        t.add_column(c, justify="right" if c != "stage" else "left")
    for name, m in result["mb"].items():
        t.add_row(name, f"{m['VmRSS']:.0f}", f"{m['RssAnon']:.0f}", f"{m['RssFile']:.0f}")
    Console().print(t)
    Console().print(
        f"private memory added by index + cache + one pass: {result['private_mb_added_by_index_and_cache']} MB"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

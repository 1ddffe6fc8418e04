"""Face detector chains side by side: which detector answered, faces held, images/s.

    python bench/crop.py [--images 300] [--chains mtcnn,haar,center haar,center ...] [--device cpu]

Two sets of real faces, each in its own framing:
- `maskproxy-dev` eval photos (384x512 portraits, drawn masks): `faces.csv` gives every face's
  centre (±10 px), so "held" is the share of photos whose chosen face box contains that centre;
- `utkface-extra` (200x200 tight, aligned bare faces): the face centre is the frame's centre.

Per chain: the share of photos each detector answered (the first that found a face wins, as in
`maskcls crop`), faces held, and images/s of the chain (decoding excluded; threads as `crop`).
retinaface runs only with --retinaface-weights (no weights are installed; speed alone says
nothing of a detector). Prints a table and writes JSON. Quality (train on each chain's crops)
is bench/quality.py's `crop-*` rows.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import pandas as pd
from rich.console import Console
from rich.table import Table

from maskcls.config import ROOT
from maskcls.crop import _detect_chain
from maskcls.data import scan_eval
from maskcls.detectors import build_detectors

SHARED = ROOT.parent / "shared" / "data"


def dev_set(root: Path, n: int) -> tuple[list[str], list[tuple[float, float] | None]]:
    ev = scan_eval(root).table.head(n)
    faces = pd.read_csv(root / "faces.csv").set_index("ImageID")
    return ev["path"].tolist(), [tuple(faces.loc[i, ["cx", "cy"]]) for i in ev["ImageID"]]


def utk_set(root: Path, n: int) -> tuple[list[str], list[tuple[float, float] | None]]:
    paths = sorted(str(p) for p in (root / "images").glob("*.jpg"))[:: max(1, 2823 // n)][:n]
    return paths, [None] * len(paths)  # None: the frame's centre


def measure(chain: list[str], paths: list[str], centres: list, options: dict, batch: int = 16) -> dict:
    images = [cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in paths]
    detectors = build_detectors(chain, **options)
    answered: dict[str, int] = {}
    held = 0
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        for s in range(0, len(images), batch):
            for k, (name, face) in enumerate(_detect_chain(detectors, images[s : s + batch], pool)):
                img = images[s + k]
                cx, cy = centres[s + k] or (img.shape[1] / 2, img.shape[0] / 2)
                answered[name] = answered.get(name, 0) + 1
                held += face.x0 <= cx <= face.x1 and face.y0 <= cy <= face.y1
    seconds = time.perf_counter() - t0
    n = len(images)
    return {"images": n, "images_per_s": round(n / seconds, 1), "held": round(held / n, 3),
            "answered": {k: round(v / n, 3) for k, v in answered.items()}}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", type=Path, default=SHARED / "maskproxy-dev")
    ap.add_argument("--extra", type=Path, default=SHARED / "utkface-extra")
    ap.add_argument("--images", type=int, default=300, help="photos per set")
    ap.add_argument("--chains", nargs="+", default=["haar,center", "mtcnn,center", "mtcnn,haar,center"])
    ap.add_argument("--retinaface-weights", default=None, help="adds retinaface,haar,center")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=Path("bench/results/crop.json"))
    args = ap.parse_args()
    chains = [c.split(",") for c in args.chains]
    options = {"device": args.device}
    if args.retinaface_weights:
        chains.append(["retinaface", "haar", "center"])
        options["weights"] = args.retinaface_weights
    sets = {"maskproxy-dev eval": dev_set(args.dev, args.images), "utkface-extra": utk_set(args.extra, args.images)}
    results = []
    for set_name, (paths, centres) in sets.items():
        for chain in chains:
            r = {"set": set_name, "chain": ",".join(chain), **measure(chain, paths, centres, options)}
            Console().print(r)
            results.append(r)
    t = Table(title=f"bench/crop.py: detector chains ({args.device}, {args.images} photos a set)")
    for c in ("set", "chain", "answered by", "faces held", "images/s"):
        t.add_column(c, justify="left" if c in ("set", "chain", "answered by") else "right")
    for r in results:
        by = ", ".join(f"{k} {100 * v:.1f}%" for k, v in sorted(r["answered"].items(), key=lambda kv: -kv[1]))
        t.add_row(r["set"], r["chain"], by, f"{100 * r['held']:.1f}%", f"{r['images_per_s']:.1f}")
    Console().print(t)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

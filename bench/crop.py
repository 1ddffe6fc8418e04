"""Face-detection throughput per detector on the dev set's photos.

    python bench/crop.py [--data ../shared/data/maskproxy-dev] [--images 200] [--device cpu]

haar and center run on all --images; retinaface runs on a few images with randomly initialised
weights unless --retinaface-weights is given (speed does not depend on the weights); mtcnn only
when facenet-pytorch is installed. Reports images/s of detection alone (decoding excluded) and
the share of images where the detector found a face. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import cv2
from rich.console import Console
from rich.table import Table

from maskcls.config import ROOT
from maskcls.data import scan_eval
from maskcls.detectors import create_detectors
from maskcls.errors import MaskclsError


def random_retinaface_weights() -> str:
    import torch
    from retinaface.network import RetinaFace

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = RetinaFace(name="Resnet50", pretrained=False, in_channels=256, out_channels=256,
                         return_layers={"layer2": 1, "layer3": 2, "layer4": 3})  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "retinaface_random.pth"
    torch.save(net.state_dict(), path)
    return str(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "maskproxy-dev")
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--retinaface-images", type=int, default=8, help="fewer: about 1 s a photo on 2 CPU cores")
    ap.add_argument("--retinaface-weights", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=Path("bench/results/crop.json"))
    args = ap.parse_args()
    paths = scan_eval(args.data).table["path"].tolist()[: args.images]
    images = [cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in paths]
    results = {}
    for name in ("center", "haar", "retinaface", "mtcnn"):
        opts = {"device": args.device}
        batch = images
        try:
            if name == "retinaface":
                opts["weights"] = args.retinaface_weights or random_retinaface_weights()
                batch = images[: args.retinaface_images]
            [det] = create_detectors([name], **opts)
        except (MaskclsError, ImportError) as e:
            results[name] = {"skipped": str(e)}
            continue
        t0 = time.perf_counter()
        found = 0
        step = 8 if det.batched else 1
        for i in range(0, len(batch), step):
            found += sum(bool(b) for b in det.detect(batch[i : i + step]))
        dt = time.perf_counter() - t0
        results[name] = {"images": len(batch), "images_per_s": round(len(batch) / dt, 1),
                         "found_share": round(found / len(batch), 3)}  # fmt: skip
        if name == "retinaface" and not args.retinaface_weights:
            results[name]["note"] = "random weights: speed only, found_share means nothing"
    t = Table(title=f"bench/crop.py: detection on {args.data.name} photos ({args.device})")
    for c in ("detector", "images", "images/s", "found a face"):
        t.add_column(c, justify="left" if c == "detector" else "right")
    for name, r in results.items():
        if "skipped" in r:
            t.add_row(name, "-", "skipped", r["skipped"][:60])
        else:
            t.add_row(name, str(r["images"]), f"{r['images_per_s']:.1f}", f"{100 * r['found_share']:.1f}%")
    Console().print(t)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

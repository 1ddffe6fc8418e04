"""Per-image probabilities for the eval images (or any photos), averaged over every fold of every run given.

Output CSV: ImageID, then `<head>_<k>` per class (mask_0..2, gender_0..1, age_0..2, and
class_0..17 for an 18-way head, whose per-task marginals are added too). The column
prefixes record the task, so ensemble and submit can check what they are combining; a file
with age probabilities ends with `age_upper`, the threshold its age classes were made with.
For `--images`, the decoded answer per photo follows: pred_mask, pred_gender, pred_age
(class names) and pred_class (0..17) where the heads give it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from torch.utils.data import DataLoader

from maskcls import io
from maskcls.data import scan_eval
from maskcls.data.cache import cached_source
from maskcls.data.dataset import FaceDataset
from maskcls.engine import distributed
from maskcls.engine.inference import infer
from maskcls.engine.kinds import build_heads
from maskcls.errors import MaskclsError, warn
from maskcls.heads import marginals
from maskcls.models import load_for_inference
from maskcls.post.export import Exported, is_exported
from maskcls.post.probs import AGE_UPPER
from maskcls.post.tune import apply_tuned, load_tuned
from maskcls.progress import LogProgress
from maskcls.runs import Run, agree, fold_checkpoints, run_inputs
from maskcls.runtime import auto_workers


def probs_table(image_ids, probs: dict[str, np.ndarray]) -> pd.DataFrame:
    if "class" in probs:
        probs = {**marginals(probs["class"]), **probs}
    cols = {"ImageID": list(image_ids)}
    for head, p in probs.items():
        cols.update({f"{head}_{k}": p[:, k] for k in range(p.shape[1])})
    return pd.DataFrame(cols)


def image_table(images: str | Path) -> pd.DataFrame:
    """ImageID (the file name, or the path below a folder) and path of every photo of a folder or glob."""
    import glob

    from maskcls.data.index import IMAGE_EXTS

    folder = Path(images)
    if folder.is_dir():
        named = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS
                       and not any(part.startswith(".") for part in p.relative_to(folder).parts))  # fmt: skip
    else:
        named = sorted(Path(p) for p in glob.glob(str(images)) if Path(p).suffix.lower() in IMAGE_EXTS)
    files = [p for p in named if p.is_file()]  # only regular files are photos: a FIFO would block the read
    if len(files) < len(named):
        others = [str(p) for p in named if not p.is_file()]
        warn(f"--images: skipped {len(others)} entries that are not regular files (folders, FIFOs, devices, "
             f"broken links), e.g. {others[0]}")  # fmt: skip
    ids = [str(p.relative_to(folder)) for p in files] if folder.is_dir() else [p.name for p in files]
    if not files:
        raise MaskclsError(f"--images {images}: no .jpg/.jpeg/.png photos found")
    return pd.DataFrame({"ImageID": ids, "path": [str(p) for p in files]})


def image_dir(images: str | Path | None) -> Path | None:
    """The folder --images reads (a glob's folder too), an input nothing may be written into."""
    if images is None:
        return None
    path = Path(images)
    return path if path.is_dir() else path.parent


def decoded(table: pd.DataFrame, age_upper: int) -> pd.DataFrame:
    """The answer per photo in words: pred_mask, pred_gender, pred_age and pred_class (0..17)."""
    from maskcls.heads import FACTORS, HEADS, classes, predict_classes

    out = table.copy()
    probs = {h: table[HEADS[h].columns()].to_numpy() for h in HEADS if f"{h}_0" in table}
    for h in FACTORS:
        if h in probs:
            out[f"pred_{h}"] = [classes(h, age_upper)[k] for k in probs[h].argmax(1)]
    if "class" in probs or set(FACTORS) <= set(probs):
        out["pred_class"] = predict_classes(probs)
    return out


def crop_source(paths: list[str], ckpt_cfg, console: Console, memo: dict):
    """A FaceDataset source of the photos cropped as the run's training images were (its crop.json);
    memo keeps the crops of each crop.json, so the folds of a run detect faces once."""
    import json

    record_path = Path(ckpt_cfg["data"] or "") / "crop.json"
    if not record_path.is_file():
        raise MaskclsError(f"--crop: the run trained on {ckpt_cfg['data']}, which has no crop.json (not crop output)")
    if record_path not in memo:
        memo[record_path] = cropped(paths, json.loads(record_path.read_text()), ckpt_cfg["img_size"], console)
        console.print(f"cropped {len(paths)} photos with the settings of {record_path}")
    return memo[record_path]


def cropped(paths: list[str], record: dict, size, console: Console):
    """A FaceDataset source: each photo cut as a crop.json record says, resized to size (H, W) as crops are."""
    import cv2

    from maskcls.crop import crop_in_memory

    crops = crop_in_memory(paths, record, console=console)
    h, w = size
    return lambda i: cv2.resize(crops[i], (w, h), interpolation=cv2.INTER_AREA)


def cache_for(ckpt_path: Path, cache_dir: Path | None) -> Path | None:
    """Where predict may cache decoded images: --cache-dir, the folder the user names, or nowhere.

    Predict writes only its --out file (and --cache-dir when given). It once used RUN/../cache, the
    training cache beside the run: a run folder from a tarball could then aim writes anywhere with a
    symlinked `cache`, and a run given to predict is an input, not a place to write. Without a cache
    each checkpoint decodes the eval images itself (seconds per thousand at reduced scale); the
    checkpoint's own cache_dir (a teammate's path, say) is never used.
    """
    return Path(cache_dir) if cache_dir is not None else None


def predict(runs: list[Path], data: Path | None, out: Path | None, tta: bool = False, batch_size: int = 64,
            device: str = "auto", console: Console | None = None, cache_dir: Path | None = None, tuned: bool = True,
            images: str | Path | None = None, crop: bool = False) -> pd.DataFrame:  # fmt: skip
    """Average every checkpoint's probabilities over DATA's eval images, or the photos `images` names.

    A run's tuned.json (tune-thresholds) applies unless tuned=False; crop=True crops the photos
    first, as the run's training images were. out=None writes nothing (the table is returned).
    """
    console = console or Console()
    exported = [r for r in runs if is_exported(r)]
    if exported:
        if len(runs) > 1:
            raise MaskclsError(f"{exported[0]}: an exported file is a whole ensemble already; give it alone")
        return predict_exported(exported[0], data, out, tta, batch_size, console, images, crop)
    ctx = distributed.setup(device)  # under torchrun: each rank predicts every world-th image
    console.quiet = not ctx.main
    dev = distributed.device(ctx, device)
    ev = image_table(images) if images is not None else scan_eval(data).table
    checkpoints = [c for r in runs for c in fold_checkpoints(r)]
    if ctx.main and out is not None:
        io.check_apart(out, "--out", {"--data": data, "--images": image_dir(images), **run_inputs(runs)})
        io.check_writable(out)  # before the inference work, not after it
        io.clean_stale_temps(Path(out).parent)
    mine = distributed.shard(len(ev), ctx)
    paths = ev["path"].iloc[mine].tolist()
    total: dict[str, np.ndarray] = {}
    heads_seen, crops, uppers = None, {}, {}
    with LogProgress(console=console, transient=True) as progress:
        for ckpt_path in checkpoints:
            model, ckpt = load_for_inference(ckpt_path, dev)
            if heads_seen is not None and ckpt["heads"] != heads_seen:
                raise MaskclsError(f"{ckpt_path}: heads {ckpt['heads']} differ from the other runs' {heads_seen}")
            heads_seen = ckpt["heads"]
            cfg = ckpt["config"]  # a Config: the checkpoint's own, on today's defaults
            uppers[str(ckpt_path)] = cfg
            age_upper = agree(uppers)  # averaging classes of two age thresholds would mix two meanings of "30-59"
            source, cache = None, cache_for(ckpt_path, cache_dir) if cfg.get("cache") and images is None else None
            if cache is not None:
                source = cached_source(cache, cfg["img_size"], paths, console)
            if crop:
                source = crop_source(paths, cfg, console, crops)
            ds = FaceDataset(paths, None, cfg["img_size"], source=source)
            loader = DataLoader(ds, batch_size=batch_size, num_workers=auto_workers(dev), pin_memory=dev.type == "cuda")
            task = progress.add_task(f"{ckpt_path.parent}", total=len(ds))
            run = Run.of_checkpoint(ckpt_path)
            choices = load_tuned(run.tuned_path if run else None) if tuned else {}
            kinds = build_heads(cfg, choices.get("age", {}).get("cutoffs"))
            probs = infer(model, loader, dev, kinds, amp=dev.type == "cuda", tta=tta,
                          progress=lambda n, t=task: progress.update(t, advance=n))  # fmt: skip
            probs = apply_tuned({h: p for h, p in probs.items() if h in kinds}, choices)
            probs = distributed.gather(mine, probs, len(ev))  # info.csv order, every image
            for k, v in probs.items():
                total[k] = total.get(k, 0) + v / len(checkpoints)
            del model
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    table = probs_table(ev["ImageID"], total)
    if "age" in total or "class" in total:  # what the age classes mean travels with them (post/probs.py)
        table[AGE_UPPER] = age_upper
    if images is not None:
        table = decoded(table, age_upper)
    if not ctx.main or out is None:
        return table
    io.write_csv(out, table)
    console.print(f"wrote {out}: {len(table)} images, {len(checkpoints)} checkpoint(s), heads {', '.join(total)}"
                  f"{', hflip TTA' if tta else ''}")  # fmt: skip
    return table


def predict_exported(path: Path, data: Path | None, out: Path | None, tta: bool, batch_size: int, console: Console,
                     images: str | Path | None = None, crop: bool = False) -> pd.DataFrame:  # fmt: skip
    """predict's table from an exported file (maskcls export), through the same crop and resize."""
    model = Exported(path)
    if tta and not model.meta.get("tta"):
        raise MaskclsError(f"--tta: {path} was exported without it (maskcls export --tta puts it in the graph)")
    ev = image_table(images) if images is not None else scan_eval(data).table
    if out is not None:
        io.check_apart(out, "--out", {"--data": data, "exported file": path, "--images": image_dir(images)})
        io.check_writable(out)
    paths = ev["path"].tolist()
    source = None
    if crop:
        if model.meta.get("crop") is None:
            raise MaskclsError(f"--crop: {path} was exported from runs trained on uncropped data (no crop record)")
        source = cropped(paths, model.meta["crop"], model.size, console)
    ds = FaceDataset(paths, None, model.size, source=source)
    chunks: dict[str, list[np.ndarray]] = {}
    with LogProgress(console=console, transient=True) as progress:
        task = progress.add_task(str(path), total=len(ds))
        for x, _ in DataLoader(ds, batch_size=batch_size, num_workers=auto_workers(torch.device("cpu"))):
            for head, p in model.run(x.numpy()).items():
                chunks.setdefault(head, []).append(p)
            progress.update(task, advance=len(x))
    probs = {h: np.concatenate(v) for h, v in chunks.items()}
    table = probs_table(ev["ImageID"], {h: probs[h] for h in ("class", "mask", "gender", "age") if h in probs})
    if "age" in probs:
        table[AGE_UPPER] = model.age_upper
    if images is not None:
        table = decoded(table, model.age_upper)
    if out is not None:
        io.write_csv(out, table)
        console.print(f"wrote {out}: {len(table)} images, {path.name} ({model.meta['format']}, "
                      f"{len(model.meta['sources'])} checkpoint(s)), heads {', '.join(probs)}"
                      f"{', hflip TTA' if model.meta.get('tta') else ''}")  # fmt: skip
    return table

"""`maskcls crop`: one face crop per image, in the same contest layout, resumable.

    CROPDIR/train/images/<person>/<stem>.jpg    CROPDIR/train/train.csv (copied)
    CROPDIR/eval/images/<ImageID>               CROPDIR/eval/info.csv   (copied)
    CROPDIR/boxes.csv                           path, detector, score, x0, y0, x1, y1, angle, 5 landmarks
    CROPDIR/crop.json                           the settings every crop in the folder was made with

Every image gets exactly one row in boxes.csv: its crop, or `failed` when it cannot be read.
x0..y1 is the rectangle cut out (with --align, in the frame rotated by `angle` degrees about the
eyes); the landmarks (le = left eye, re, nose, ml = left mouth corner, mr, in the photo's own pixels)
are blank when the detector gives none.
A second run skips what boxes.csv already records (and whose crop exists) — only with the same
settings: a rerun with another size, margin or detector chain is refused (`--force` redoes all),
so a folder never mixes two kinds of crops.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.table import Table

from maskcls import io
from maskcls.data import scan_eval, scan_train
from maskcls.data.dataset import decode, encoded_size, read_bytes
from maskcls.detectors import Box, build_detectors, most_plausible
from maskcls.errors import MaskclsError
from maskcls.progress import LogProgress

LANDMARK_COLUMNS = [f"{p}_{a}" for p in ("le", "re", "nose", "ml", "mr") for a in "xy"]
BOX_COLUMNS = ["path", "detector", "score", "x0", "y0", "x1", "y1", "angle", *LANDMARK_COLUMNS]
NO_FACE = "none"  # the detector name recorded when no detector of the chain found a face


@dataclass
class CropJob:
    src: str  # absolute input path
    rel: str  # output path relative to CROPDIR (also the key in boxes.csv)


@dataclass
class CropSettings:
    size: tuple[int, int] = (320, 240)  # output (H, W); 4:3 like the photos
    margin: float = 0.2  # added on every side, as a share of the face box
    down_shift: float = 0.1  # the box moves down by this share of its height: keeps the chin and mask
    align: bool = False  # level the eyes and frame the face from its landmarks (faces that have them)


# The face box in eye distances, for --align: MTCNN's own box against its landmarks on 48 upright dev
# faces (medians; spread 0.14-0.21): 2.22 wide, 2.90 high, centred 0.27 below the eyes; eyes to mouth
# is 1.05. The scale is the larger of the eye distance and eyes-to-mouth / 1.05, so a turned head
# (eyes closer together) is not cropped tighter.
ALIGN_FRAME = {"w": 2.22, "h": 2.90, "dy": 0.27, "mouth": 1.05}


def list_jobs(data: Path) -> list[CropJob]:
    """Every image of the parts that exist: train/ and eval/, or either alone (a late test set)."""
    has_train, has_eval = (data / "train" / "images").is_dir(), (data / "eval").exists()
    if not (has_train or has_eval):
        raise MaskclsError(f"{data}: neither train/images/ nor eval/ found (the contest layout)")
    jobs = []
    train = scan_train(data).table if has_train else pd.DataFrame({"path": [], "stem": []})
    for path, person_dir, stem in zip(train["path"], train["path"].map(lambda p: Path(p).parent.name), train["stem"],
                                      strict=True):  # fmt: skip
        jobs.append(CropJob(path, f"train/images/{person_dir}/{stem}.jpg"))
    if has_eval:
        ev = scan_eval(data).table
        jobs += [CropJob(p, f"eval/images/{i}") for p, i in zip(ev["path"], ev["ImageID"], strict=True)]
    return jobs


def crop_box(face: Box, width: int, height: int, s: CropSettings) -> tuple[int, int, int, int]:
    """Face box -> crop rectangle with margin and the output aspect, shifted (not padded) into the image."""
    cx, cy = (face.x0 + face.x1) / 2, (face.y0 + face.y1) / 2 + s.down_shift * face.h
    w, h = face.w * (1 + 2 * s.margin), face.h * (1 + 2 * s.margin)
    aspect = s.size[1] / s.size[0]  # W / H
    w, h = max(w, h * aspect), max(h, w / aspect)
    w, h = min(w, width), min(h, height)
    w, h = min(w, h * aspect), min(h, w / aspect)
    x0 = int(round(min(max(cx - w / 2, 0), width - w)))
    y0 = int(round(min(max(cy - h / 2, 0), height - h)))
    return x0, y0, x0 + int(round(w)), y0 + int(round(h))


def align(img: np.ndarray, face: Box) -> tuple[np.ndarray, Box, float]:
    """Rotate about the eyes' midpoint so the eyes are level; the face box framed from the landmarks.

    Returns the rotated image, the face box (and landmarks) in its frame, and the angle in degrees.
    """
    pts = np.asarray(face.landmarks, dtype=np.float64).reshape(5, 2)
    (lx, ly), (rx, ry) = pts[0], pts[1]
    angle = float(np.degrees(np.arctan2(ry - ly, rx - lx)))
    eyes = (pts[0] + pts[1]) / 2
    m = cv2.getRotationMatrix2D((float(eyes[0]), float(eyes[1])), angle, 1.0)
    h, w = img.shape[:2]
    rotated = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    pts = np.c_[pts, np.ones(5)] @ m.T
    eyes, mouth = (pts[0] + pts[1]) / 2, (pts[3] + pts[4]) / 2
    f = ALIGN_FRAME
    scale = max(float(np.linalg.norm(pts[1] - pts[0])), float(np.linalg.norm(mouth - eyes)) / f["mouth"], 1.0)
    cx, cy = (eyes[0] + mouth[0]) / 2, eyes[1] + f["dy"] * scale
    half_w, half_h = f["w"] * scale / 2, f["h"] * scale / 2
    box = Box(cx - half_w, cy - half_h, cx + half_w, cy + half_h, face.score, tuple(pts.reshape(-1).tolist()))
    return rotated, box, angle


def cut(img: np.ndarray, face: Box, s: CropSettings) -> tuple[np.ndarray, tuple[int, int, int, int], float]:
    """One face's crop: its pixels at s.size, the rectangle cut, and the rotation (with s.align)."""
    angle = 0.0
    if s.align and face.landmarks is not None:
        img, face, angle = align(img, face)
    x0, y0, x1, y1 = crop_box(face, img.shape[1], img.shape[0], s)
    crop = cv2.resize(img[y0:y1, x0:x1], (s.size[1], s.size[0]), interpolation=cv2.INTER_AREA)
    return crop, (x0, y0, x1, y1), angle


def box_row(rel: str, name: str, face: Box, rect: tuple[int, int, int, int], angle: float) -> list:
    marks = [round(v, 1) for v in face.landmarks] if face.landmarks is not None else [None] * len(LANDMARK_COLUMNS)
    return [rel, name, round(face.score, 4), *rect, round(angle, 2), *marks]


def _write_image(path: Path, img: np.ndarray) -> None:
    ext = path.suffix.lower() if path.suffix.lower() in (".jpg", ".jpeg", ".png") else ".jpg"

    def write(tmp: str) -> None:
        ok, buf = cv2.imencode(ext, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise OSError(f"cannot encode {path}")
        Path(tmp).write_bytes(buf.tobytes())

    io.atomic_write(path, write)


def load_done(boxes_csv: Path, out: Path) -> dict[str, list]:
    """Rows already recorded whose crop exists (failed rows are retried)."""
    if not boxes_csv.exists():
        return {}
    try:  # a killed run may leave a torn last line; another crop into this --out, a file not yet written
        df = pd.read_csv(boxes_csv, on_bad_lines="skip", dtype={"path": str})
    except pd.errors.EmptyDataError:
        return {}
    df = df.dropna(subset=["detector"]).reindex(columns=BOX_COLUMNS)  # older files: no angle, no landmarks
    done = df[(df["detector"] != "failed") & df["path"].map(lambda p: (out / p).is_file())]
    return {r.path: list(r) for r in done[BOX_COLUMNS].itertuples(index=False)}


def recorded_settings(settings: CropSettings, detectors: list[str], options: dict) -> dict:
    """What decides a crop's pixels: written to crop.json, compared on every rerun."""
    record = {"size": list(settings.size), "margin": settings.margin, "down_shift": settings.down_shift,
              "detectors": list(detectors)}  # fmt: skip
    if settings.align:  # recorded only when on: folders cropped before --align existed still match
        record["align"] = True
    if "retinaface" in detectors:
        record["retinaface_threshold"] = options.get("threshold")
        record["retinaface_weights"] = options.get("weights")
    return record


def check_settings(out: Path, record: dict, force: bool) -> None:
    """Refuse to add crops of other settings to a folder (or, with force, start it over)."""
    path, boxes = out / "crop.json", out / "boxes.csv"
    if force:
        for p in (path, boxes):
            p.unlink(missing_ok=True)
    elif path.exists():
        try:
            old = json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            raise MaskclsError(f"{path}: unreadable crop settings; rerun with --force to redo every crop") from None
        old, new = {"align": False, **old}, {"align": False, **record}  # align is recorded only when on
        diff = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k)]  # fmt: skip
        if diff:
            raise MaskclsError(
                f"{out}: holds crops made with other settings ({'; '.join(diff)}): "
                "use another --out, or --force to redo every crop"
            )
    elif boxes.exists():
        raise MaskclsError(f"{out}: holds crops without recorded settings (older maskcls); --force redoes them")


def run_crop(data: Path, out: Path, detectors: list[str], settings: CropSettings, workers: int = 2,
             batch_size: int = 16, strict: bool = False, console: Console | None = None, force: bool = False,
             **detector_options) -> dict:  # fmt: skip
    """Crop every train and eval image; returns {'counts': per detector, 'failed': [paths]}."""
    console = console or Console()
    data, out = Path(data), Path(out)
    io.check_apart(out, "--out", {"--data": data})  # crops written over their own photos lose the photos
    if not (out / "crop.json").is_file() and any((out / p).exists() for p in ("train/images", "eval/info.csv")):
        raise MaskclsError(f"--out {out} holds a data set that is not crop output (no crop.json): crops and tables "
                           "written there would replace and mix with its own: write to a folder of its own")
    jobs = list_jobs(data)
    record = recorded_settings(settings, detectors, detector_options)
    check_settings(out, record, force)
    boxes_csv = out / "boxes.csv"
    done = load_done(boxes_csv, out)
    todo = [j for j in jobs if j.rel not in done]
    console.print(f"{len(jobs)} images, {len(jobs) - len(todo)} already cropped, {len(todo)} to do")
    chain = build_detectors(detectors, **detector_options) if todo else []
    for det in chain:
        if getattr(det, "source", None):
            console.print(f"{det.name}: {det.source}")
    io.write_json(out / "crop.json", record)  # before the first crop: a partial run is recorded too
    rows = dict(done)
    with open(boxes_csv, "a", newline="") as f, ThreadPoolExecutor(max(1, workers)) as pool:
        writer = csv.writer(f)
        if f.tell() == 0:
            writer.writerow(BOX_COLUMNS)
        columns = [TextColumn("crop"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        with LogProgress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("crop", total=len(todo))
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                images = list(pool.map(_read, [j.src for j in batch]))  # OpenCV releases the GIL: threads suffice
                results = _detect_chain(chain, images, pool)
                for job, img, (name, face) in zip(batch, images, results, strict=True):
                    if img is None:
                        row = [job.rel, "failed", 0.0, -1, -1, -1, -1, 0.0] + [None] * len(LANDMARK_COLUMNS)
                    else:
                        crop, rect, angle = cut(img, face, settings)
                        _write_image(out / job.rel, crop)
                        row = box_row(job.rel, name, face, rect, angle)
                    writer.writerow(row)
                    rows[job.rel] = row
                f.flush()
                progress.update(task, advance=len(batch))
    # Final, tidy boxes.csv (sorted, one row per image) replaces the appended log atomically.
    io.write_csv(boxes_csv, pd.DataFrame(list(rows.values()), columns=BOX_COLUMNS).sort_values("path"))
    for name in ("train/train.csv", "eval/info.csv"):
        if (data / name).exists():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data / name, out / name)
    counts = Counter(r[1] for r in rows.values())
    failed = sorted(r[0] for r in rows.values() if r[1] == "failed")
    no_face = sorted(r[0] for r in rows.values() if r[1] == NO_FACE)
    _report(console, counts, failed, no_face)
    return {"counts": dict(counts), "failed": failed, "no_face": no_face}


MAX_PIXELS = 50_000_000  # 7000x7000: a photo larger than this is refused, not decoded (20000x20000 took 8 GB)


def _read(path: str) -> np.ndarray | None:
    """RGB image, or None when unreadable, truncated or over MAX_PIXELS (recorded as `failed`)."""
    try:
        data = read_bytes(path)
        hw = encoded_size(data)  # from the header: a huge photo is refused before it is decoded
        if hw is not None and hw[0] * hw[1] > MAX_PIXELS:
            return None
        return cv2.cvtColor(decode(path, data=data), cv2.COLOR_BGR2RGB)
    except MaskclsError:
        return None


def _detect_chain(chain, images, pool) -> list[tuple[str, Box | None]]:
    """(detector name, face) per image: each detector sees only the images still without a face."""
    result: list[tuple[str, Box | None]] = [("failed", None)] * len(images)
    pending = [i for i, img in enumerate(images) if img is not None]
    for det in chain:
        if not pending:
            break
        imgs = [images[i] for i in pending]
        found = det.detect(imgs) if det.batched else [b for [b] in pool.map(lambda im, d=det: d.detect([im]), imgs)]
        still = []
        for i, boxes in zip(pending, found, strict=True):
            face = most_plausible(boxes, images[i].shape[1], images[i].shape[0])
            if face is None:
                still.append(i)
            else:
                result[i] = (det.name, face)
        pending = still
    for i in pending:  # a chain without `center` can leave faces unfound: the whole image, listed as such
        h, w = images[i].shape[:2]
        result[i] = (NO_FACE, Box(0, 0, w, h, 0.0))
    return result


def _report(console: Console, counts: Counter, failed: list[str], no_face: list[str]) -> None:
    t = Table(title="faces by detector")
    t.add_column("detector")
    t.add_column("images", justify="right")
    t.add_column("share", justify="right")
    total = max(sum(counts.values()), 1)
    for name, n in counts.most_common():
        t.add_row(name, str(n), f"{100 * n / total:.1f}%")
    console.print(t)
    if failed:
        console.print(f"[red]{len(failed)} image(s) could not be read[/], e.g. " + ", ".join(failed[:5]))
    if no_face:
        console.print(f"[yellow]{len(no_face)} image(s) with no face found by any detector[/] (kept whole: add "
                      "`center` to --detectors for a portrait box), e.g. " + ", ".join(no_face[:5]))  # fmt: skip


def crop_in_memory(paths: list[str], record: dict, workers: int = 2, console: Console | None = None,
                   **detector_options) -> list[np.ndarray]:  # fmt: skip
    """RGB crops of image files with the settings of a crop.json record (nothing is written)."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        images = list(pool.map(_read, paths))
    for path, img in zip(paths, images, strict=True):
        if img is None:
            raise MaskclsError(f"{path}: cannot read image (unreadable, truncated, or over {MAX_PIXELS // 10**6} "
                               "megapixels)")  # fmt: skip
    found = crop_images(images, record, workers, **detector_options)
    no_face = [path for path, (_, _, name) in zip(paths, found, strict=True) if name == NO_FACE]
    if no_face and console is not None:
        console.print(f"[yellow]{len(no_face)} photo(s) with no face found by any detector[/] (kept whole), e.g. "
                      + ", ".join(no_face[:5]))  # fmt: skip
    return [crop for crop, _, _ in found]


def settings_of(record: dict, source: str = "crop.json") -> CropSettings:
    """The crop settings a crop.json record (or an export's sidecar) holds, checked as `crop`'s flags are:
    a record is a file someone may have edited, and a 60000x45000 crop would take all the memory there is."""
    from maskcls.settings import IMG_SIDE

    try:
        size = tuple(int(v) for v in record["size"])
        margin, shift = float(record["margin"]), float(record["down_shift"])
    except (KeyError, TypeError, ValueError) as e:
        raise MaskclsError(f"{source}: not a crop record ({type(e).__name__}: {e})") from None
    lo, hi = IMG_SIDE
    if len(size) != 2 or not all(lo <= v <= hi for v in size):
        raise MaskclsError(f"{source}: crop size {list(size)} must be two sides in {lo}..{hi}")
    if not (0 <= margin <= 2 and -0.5 <= shift <= 1):  # crop's --margin and --down-shift ranges
        raise MaskclsError(f"{source}: margin {margin} or down_shift {shift} out of range (0..2, -0.5..1)")
    return CropSettings(size=size, margin=margin, down_shift=shift, align=bool(record.get("align", False)))


def crop_images(images: list[np.ndarray], record: dict, workers: int = 2,
                **detector_options) -> list[tuple[np.ndarray, tuple[int, int, int, int], str]]:  # fmt: skip
    """(crop, rectangle cut (x0, y0, x1, y1), detector name) of RGB images, as a crop.json record says."""
    settings = settings_of(record)
    options = {"threshold": record.get("retinaface_threshold"), "weights": record.get("retinaface_weights"),
               **detector_options}  # fmt: skip
    chain = build_detectors(record["detectors"], **{k: v for k, v in options.items() if v is not None})
    with ThreadPoolExecutor(max(1, workers)) as pool:
        faces = _detect_chain(chain, images, pool)
    out = []
    for img, (name, face) in zip(images, faces, strict=True):
        crop, rect, _ = cut(img, face, settings)
        out.append((crop, rect, name))
    return out

"""External faces with known age and gender (UTKFace, All-Age-Faces, ...): extra training rows for
the age and gender heads, never validated, never teaching the mask head (their mask label is -1).

Two sources (`--external DIR_OR_CSV`):
  a folder in UTKFace naming   <age>_<gender>_<race>_<date>.jpg, gender 0 male / 1 female
  a CSV                        path,age,gender (gender 0/1 or male/female; paths relative to the CSV)

Framing: such photos are tight, aligned faces (UTKFace: Haar's face box is the frame's whole
width, centred at 41% of its height — measured on 95 utkface-extra faces padded by half their
width, since on the bare photo Haar cannot return a box larger than the frame and says 82%),
while the training images are either `maskcls crop` output (a face box plus `margin` on every
side, moved down by `down_shift`: crop.json says which) or the contest's portraits (Haar's face
box is 62% of the width, centred at 37% of the height, on 96 maskproxy-dev photos). Each
external face is re-framed once to what the training images show — the same face width and
centre, the same aspect, edges replicated where the new frame leaves the photo — and written
under OUT/external/ (the folder the run writes to), where the image cache picks it up. Checked
the same way: Haar finds the face at 71% of the width on re-framed faces, 72% on dev-set crops
(target 71%), and 62% on faces re-framed for portraits.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from rich.console import Console

from maskcls import io, labels
from maskcls.data.dataset import read_image
from maskcls.data.index import IMAGE_EXTS
from maskcls.errors import MaskclsError
from maskcls.io import read_csv

UTKFACE = re.compile(r"^(\d{1,3})_([01])_(\d)_")
SOURCE_FACE = (1.0, 0.41)  # a tight aligned face photo: face-box width share, face-centre height share
PHOTO_FACE = (0.62, 0.37)  # a contest portrait (384x512)


def scan_external(src: str | Path, age_upper: int) -> pd.DataFrame:
    """Rows shaped like the train index: mask and class -1 (unknown), age and gender known."""
    src = Path(src)
    if src.is_dir():
        files = sorted(p for p in src.rglob("*")
                       if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".") and p.is_file())  # fmt: skip
        parsed = [(p, UTKFACE.match(p.name)) for p in files]
        df = pd.DataFrame({"path": [str(p) for p, m in parsed if m], "age": [int(m[1]) for _, m in parsed if m],
                           "gender": [int(m[2]) for _, m in parsed if m]})  # fmt: skip
        if df.empty:
            raise MaskclsError(f"{src}: no face photos named <age>_<gender>_<race>_<date>.jpg (UTKFace naming)")
    elif src.is_file():
        df = read_csv(src, ["path", "age", "gender"], dtype=str, keep_default_na=False)
        empty = df["path"].str.strip() == ""
        if empty.any():
            raise MaskclsError(f"{src}: row {int(empty.to_numpy().argmax()) + 2} has no path")
        df["path"] = [p if Path(p).is_absolute() else str(src.parent / p) for p in df["path"]]
        df["gender"] = [_gender(g, src) for g in df["gender"]]
        missing = [p for p in df["path"] if not Path(p).is_file()]
        if missing:
            raise MaskclsError(f"{src}: image {missing[0]} does not exist ({len(missing)} missing)")
    else:
        raise MaskclsError(f"{src}: --external must be a folder of UTKFace-named photos or a CSV path,age,gender")
    ages = pd.to_numeric(df["age"], errors="coerce")
    bad = ages.isna() | ~ages.between(1, labels.MAX_AGE) | (ages != ages.round())
    if bad.any():
        raise MaskclsError(f"{src}: age {str(df['age'][bad].iloc[0])!r} is not a plausible whole number of years")
    stems = [Path(p).stem for p in df["path"]]
    age_group = labels.age_group(ages.to_numpy(int), age_upper)
    return pd.DataFrame({
        "person": [f"ext-{s}" for s in stems], "gender_name": [labels.GENDER_NAMES[g] for g in df["gender"]],
        "race": "", "age_years": ages.to_numpy(int), "stem": "external", "path": df["path"].tolist(),
        "mask": -1, "gender": df["gender"].to_numpy(int), "age": age_group, "class": -1,
        "balance": 100 + df["gender"].to_numpy(int) * 3 + age_group,  # balanced among themselves, not as one class
    })  # fmt: skip


def _gender(value, src: Path) -> int:
    text = str(value).strip().lower()
    if text in ("0", "1"):
        return int(text)
    try:
        return labels.gender_code(text)
    except ValueError:
        raise MaskclsError(f"{src}: gender {value!r} is neither 0/1 nor male/female") from None


def target_framing(data_dir: str | Path) -> tuple[tuple[int, int], tuple[float, float]]:
    """(H, W) and (face width share, face centre height share) of the training images in data_dir."""
    crop_json = Path(data_dir) / "crop.json"
    if not crop_json.is_file():
        return (512, 384), PHOTO_FACE
    import json

    s = json.loads(crop_json.read_text())
    (h, w), margin, down = s["size"], s["margin"], s["down_shift"]
    box_w, box_h = 1 + 2 * margin, max(1 + 2 * margin, (1 + 2 * margin) * h / w)  # crop.crop_box on a square face
    box_w = max(box_w, box_h * w / h)
    return (h, w), (1 / box_w, 0.5 - down / box_h)


def reframe(img: np.ndarray, size: tuple[int, int], face: tuple[float, float]) -> np.ndarray:
    """A tight face photo (SOURCE_FACE framing) re-framed to size (H, W) with the face at `face`."""
    sh, sw = img.shape[:2]
    face_w, face_cy = SOURCE_FACE[0] * sw, SOURCE_FACE[1] * sh
    out_w = face_w / face[0]
    out_h = out_w * size[0] / size[1]
    x0, y0 = sw / 2 - out_w / 2, face_cy - face[1] * out_h
    pad = int(np.ceil(max(0, -x0, -y0, x0 + out_w - sw, y0 + out_h - sh))) + 1
    padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    x0, y0 = int(round(x0 + pad)), int(round(y0 + pad))
    box = padded[y0 : y0 + int(round(out_h)), x0 : x0 + int(round(out_w))]
    return cv2.resize(box, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def frame_external(rows: pd.DataFrame, data_dir: str | Path, out_dir: str | Path, console: Console) -> pd.DataFrame:
    """rows with `path` pointing at re-framed copies under out_dir/external/<framing>/ (made once)."""
    size, face = target_framing(data_dir)
    tag = hashlib.sha1(repr((size, face, SOURCE_FACE)).encode()).hexdigest()[:8]
    folder = Path(out_dir) / "external" / f"{size[0]}x{size[1]}-{tag}"
    # the highest of out_dir, out_dir/external, folder that this call creates: removed again if a photo fails,
    # so a bad --external leaves no folder behind in an --out that did not exist
    new = next((p for p in (Path(out_dir), folder.parent, folder) if not p.exists()), None)
    framed = []
    try:
        for src in rows["path"]:
            name = hashlib.sha1(str(Path(src).resolve()).encode()).hexdigest()[:12] + "-" + Path(src).stem + ".jpg"
            dst = folder / name
            if not dst.is_file():
                img = reframe(read_image(src), size, face)  # RGB
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
                io.atomic_write(dst, lambda tmp, b=buf: Path(tmp).write_bytes(b.tobytes()))
            framed.append(str(dst))
    except BaseException:
        if new is not None:
            shutil.rmtree(new, ignore_errors=True)
        raise
    console.print(f"external faces: {len(rows)} re-framed to {size[0]}x{size[1]} in {folder}")
    return rows.assign(path=framed)

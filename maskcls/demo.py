"""A generated data set in the exact contest layout, for demos and tests.

Each person is a drawn face at 384x512 whose labels are visible:
  mask    worn: mask over nose and mouth; incorrect: mask below the nose; normal: no mask
  gender  female: long hair down to the shoulders; male: short hair
  age     hair colour goes from dark to white with age (and wrinkles from 45)
Faces are jittered in position, size, skin tone, background and mask colour, so a model
must look at the right places. The same junk real archives carry is planted in train/.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from maskcls import labels
from maskcls.errors import MaskclsError

W, H = 384, 512
STEMS = ["mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal"]
MASK_COLOURS = [
    (120, 170, 220),
    (235, 235, 235),
    (30, 30, 35),
    (130, 130, 135),
    (90, 160, 120),
    (40, 50, 110),
]
# Group mix close to the contest's: about 45% under 30, 40% 30-59, 15% 60 and over.
AGE_RANGES = [(18, 29), (30, 59), (60, 80)]
AGE_MIX = [0.45, 0.40, 0.15]


def _hair_colour(age: int, rng: np.random.Generator) -> tuple[int, int, int]:
    t = np.clip((age - 20) / 50.0, 0.0, 1.0)  # 20 -> dark, 70+ -> white
    dark = np.array([45, 32, 22]) + rng.integers(-10, 10, 3)
    white = np.array([225, 225, 220])
    return tuple(int(v) for v in np.clip(dark * (1 - t) + white * t, 0, 255))


def draw_face(mask: int, female: bool, age: int, rng: np.random.Generator) -> Image.Image:
    """One 384x512 portrait with the given mask code, gender and age in years."""
    bg = tuple(int(v) for v in rng.integers(60, 200, 3))
    img = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(img)
    cx = W / 2 + rng.uniform(-50, 50)
    cy = H * 0.42 + rng.uniform(-40, 30)
    fw = rng.uniform(70, 95)  # half width of the face
    fh = fw * rng.uniform(1.25, 1.4)
    skin = tuple(int(v) for v in np.array([225, 185, 150]) * rng.uniform(0.6, 1.05))
    hair = _hair_colour(age, rng)
    # shoulders
    d.ellipse(
        [cx - 2.2 * fw, cy + fh * 0.9, cx + 2.2 * fw, cy + fh * 3.2],
        fill=tuple(int(v) for v in rng.integers(0, 255, 3)),
    )
    if female:  # long hair falls behind the face to the shoulders
        d.rounded_rectangle(
            [cx - fw * 1.25, cy - fh * 1.1, cx + fw * 1.25, cy + fh * 1.35], radius=int(fw * 0.6), fill=hair
        )
    d.ellipse([cx - fw * 0.25, cy + fh * 0.7, cx + fw * 0.25, cy + fh * 1.25], fill=skin)  # neck
    d.ellipse([cx - fw, cy - fh, cx + fw, cy + fh], fill=skin)
    d.chord([cx - fw * 1.05, cy - fh * 1.12, cx + fw * 1.05, cy + fh * 0.1], 180, 360, fill=hair)  # hair cap
    # eyes and brows
    for sx in (-1, 1):
        ex, ey = cx + sx * fw * 0.4, cy - fh * 0.12
        d.ellipse([ex - 11, ey - 6, ex + 11, ey + 6], fill=(250, 250, 250))
        d.ellipse([ex - 5, ey - 5, ex + 5, ey + 5], fill=(40, 30, 20))
        d.line([ex - 14, ey - 16, ex + 14, ey - 16], fill=hair, width=4)
    if age >= 45:  # wrinkles on the forehead
        for k in range(1 + (age - 45) // 10):
            y = cy - fh * 0.45 + 7 * k
            d.line([cx - fw * 0.4, y, cx + fw * 0.4, y], fill=tuple(int(v * 0.75) for v in skin), width=2)
    nose_y, mouth_y = cy + fh * 0.18, cy + fh * 0.45
    d.polygon([(cx, cy), (cx - 9, nose_y), (cx + 9, nose_y)], fill=tuple(int(v * 0.85) for v in skin))
    d.line([cx - fw * 0.3, mouth_y, cx + fw * 0.3, mouth_y], fill=(170, 60, 60), width=6)
    if mask != 2:
        colour = MASK_COLOURS[int(rng.integers(len(MASK_COLOURS)))]
        # worn: from the nose bridge down; incorrect: pulled down to the chin, nose and mouth visible
        top = cy - fh * 0.05 if mask == 0 else mouth_y + fh * 0.12
        d.rounded_rectangle([cx - fw * 0.85, top, cx + fw * 0.85, cy + fh * 0.95], radius=14, fill=colour)
        for sx in (-1, 1):  # ear loops
            d.line([cx + sx * fw * 0.85, top + 8, cx + sx * fw * 1.02, cy - fh * 0.05], fill=colour, width=3)
    noise = rng.normal(0, 6, (H, W, 3))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8))


def _person(rng: np.random.Generator) -> tuple[bool, int]:
    female = bool(rng.random() < 0.6)
    lo, hi = AGE_RANGES[int(rng.choice(3, p=AGE_MIX))]
    return female, int(rng.integers(lo, hi + 1))


DEMO_PARTS = ("train", "eval", "eval_answers.csv")  # what make_demo writes, and --force replaces


def make_demo(out: str | Path, train_persons: int = 60, eval_persons: int = 20, seed: int = 0,
              force: bool = False) -> Path:  # fmt: skip
    """Write OUT/train, OUT/eval and OUT/eval_answers.csv; returns OUT.

    A folder that already holds anything is refused (it may be a real data set: generated persons
    would mix into it), unless force: then the demo's own parts are replaced and the rest is kept.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MaskclsError(f"{out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise MaskclsError(f"{out}: folder is not empty (a data set?): choose a new folder, or --force to "
                               f"replace its {', '.join(DEMO_PARTS)}")  # fmt: skip
        for part in DEMO_PARTS:
            p = out / part
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink(missing_ok=True)
    rng = np.random.default_rng(seed)
    images = out / "train" / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(1, train_persons + 1):
        female, age = _person(rng)
        gender = "female" if female else "male"
        folder = f"{i:06d}_{gender}_Asian_{age}"
        rows.append([f"{i:06d}", gender, "Asian", str(age), folder])
        (images / folder).mkdir(exist_ok=True)
        for stem in STEMS:
            draw_face(labels.STEM_TO_MASK[stem], female, age, rng).save(images / folder / f"{stem}.jpg", quality=90)
    with open(out / "train" / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([["id", "gender", "race", "age", "path"], *rows])
    _plant_junk(images, rows)

    eval_images = out / "eval" / "images"
    eval_images.mkdir(parents=True, exist_ok=True)
    info, answers = [], []
    for j in range(train_persons + 1, train_persons + eval_persons + 1):
        female, age = _person(rng)
        for stem in STEMS:
            mask = labels.STEM_TO_MASK[stem]
            image_id = hashlib.sha1(f"{seed}-{j}-{stem}".encode()).hexdigest() + ".jpg"
            draw_face(mask, female, age, rng).save(eval_images / image_id, quality=90)
            ans = labels.encode(mask, int(female), labels.age_group(age))
            info.append([image_id, 0])
            answers.append([image_id, ans, mask, int(female), age, f"{j:06d}"])
    order = rng.permutation(len(info))  # flat, shuffled: names and order carry no label
    with open(out / "eval" / "info.csv", "w", newline="") as f:
        csv.writer(f).writerows([["ImageID", "ans"], *[info[k] for k in order]])
    with open(out / "eval_answers.csv", "w", newline="") as f:
        csv.writer(f).writerows([["ImageID", "ans", "mask", "gender", "age", "person"], *[answers[k] for k in order]])
    return out


def _plant_junk(images: Path, rows: list[list[str]]) -> None:
    """The kinds of junk a real archive carries: AppleDouble files, hidden folders, stray files."""
    apple_double = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(4096 - 24)
    (images / rows[0][4] / "._mask1.jpg").write_bytes(apple_double)
    (images / rows[1][4] / "._normal.jpg").write_bytes(apple_double)
    (images / rows[2][4] / "notes.txt").write_text("retake photo\n")
    (images / ".DS_Store").write_bytes(bytes(64))
    hidden = images / ".ipynb_checkpoints"
    hidden.mkdir(exist_ok=True)
    (hidden / "mask1-checkpoint.jpg").write_bytes((images / rows[0][4] / "mask1.jpg").read_bytes())

"""One dataset for every task: images at the training size as uint8 CHW tensors, plus integer labels."""

from __future__ import annotations

import os
import stat
import struct
import sys
import tempfile
import threading
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from maskcls.errors import MaskclsError

# cv2 decodes JPEGs at 1/2, 1/4, 1/8 scale almost for free (DCT scaling): use the smallest
# reduction that still leaves the image at least as large as the target.
_REDUCED = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


# A JPEG cut short and given an end marker again ("Corrupt JPEG data: premature end of data
# segment") decodes without an error: libjpeg stops where the data ran out and leaves every later
# block at zero coefficients, i.e. exactly (128, 128, 128), down to the last block of the scan, the
# bottom-right one. No decoder maskcls can reach (OpenCV, Pillow, torchvision) reports that to Python;
# libjpeg writes its warning to the process's stderr. So `_imdecode` looks at the effect first (a
# bottom-right 8x8 block of flat grey: cheap, and true of every such file however late the cut), and
# only then decodes again listening to stderr for libjpeg's word: a real photo with a grey corner or a
# grey bottom edge is kept, a cut one is refused, even one cut inside its last row of blocks.


def truncation(data: bytes) -> str | None:
    """Why an encoded image is cut off, or None: a JPEG without its end marker, a PNG without IEND.

    OpenCV decodes such files anyway and fills the missing rows with grey (with a warning that
    names no file), so a truncated download would train silently. Checking the last bytes costs
    nothing; trailing bytes after the end marker (some cameras add them) are tolerated.
    """
    tail = data[-4096:]
    if data[:3] == b"\xff\xd8\xff" and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end-of-image marker)"
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in tail:
        return "truncated PNG (no IEND chunk)"
    return None


def read_bytes(path: str) -> bytes:
    """The whole encoded file, checked complete; MaskclsError naming the file otherwise."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO named x.jpg would block open() forever
            raise MaskclsError(f"{path}: not a regular file (a FIFO, socket or device): not an image")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise MaskclsError(f"{path}: cannot read image ({e.strerror})") from None
    why = truncation(data)
    if why is not None:
        raise MaskclsError(f"{path}: {why}")
    return data


MISSING_DATA_GREY = 128  # what libjpeg paints where a JPEG's entropy-coded data ran out


def _imdecode(data: bytes, path: str, flag: int) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag) if data else None
    if img is None:
        raise MaskclsError(f"{path}: cannot decode image (corrupt or not an image)")
    block = 8 // next((f for f, v in _REDUCED.items() if v == flag), 1)  # the last block, at this DCT scale
    if data[:2] == b"\xff\xd8" and (img[-block:, -block:] == MISSING_DATA_GREY).all() and _libjpeg_objects(data, flag):
        raise MaskclsError(f"{path}: corrupt JPEG (its data ends early: libjpeg reports a premature end)")
    return img


_STDERR_LOCK = threading.Lock()  # file descriptor 2 is the process's: one listener at a time


def _libjpeg_objects(data: bytes, flag: int) -> bool:
    """Decode again with stderr captured: does libjpeg call the data corrupt or cut short?"""
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            cv2.imdecode(np.frombuffer(data, np.uint8), flag)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        said = sink.read().decode(errors="replace")
    return "Corrupt JPEG data" in said or "Premature end of JPEG" in said


def decode(path: str, flag: int = cv2.IMREAD_COLOR, data: bytes | None = None) -> np.ndarray:
    """BGR uint8 image of a complete file (or of its bytes, read already); MaskclsError naming the file otherwise."""
    return _imdecode(read_bytes(path) if data is None else data, path, flag)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # JPEG frame headers


def encoded_size(data: bytes) -> tuple[int, int] | None:
    """(H, W) from a JPEG's frame header or a PNG's IHDR, without decoding; None if not found."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return h, w
    i = 2 if data[:2] == b"\xff\xd8" else len(data)
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
        elif marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return h, w
        else:
            i += 2 + struct.unpack(">H", data[i + 2 : i + 4])[0]
    return None


def reduction(source_hw: tuple[int, int], size) -> int:
    """Largest JPEG DCT scale-down (8, 4, 2) that keeps the image at least `size`; 1 for none."""
    for factor in (8, 4, 2):
        if source_hw[0] // factor >= size[0] and source_hw[1] // factor >= size[1]:
            return factor
    return 1


def read_image(path: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode an image to RGB uint8 HxWx3, resized to size=(H, W) if given.

    The file's own size (read from its header) picks a cheap reduced decode: a 512x384 photo
    for 128x96 decodes at 1/4, a 256x192 crop at 1/2. Photos turned by EXIF orientation can
    come out too small; those are decoded again in full, from the bytes already read.
    """
    data = read_bytes(path)
    flag = cv2.IMREAD_COLOR
    hw = encoded_size(data) if size is not None else None
    if hw is not None:
        flag = _REDUCED[reduction(hw, size)]
    img = _imdecode(data, path, flag)
    if size is not None and img.shape[:2] != tuple(size):
        if img.shape[0] < size[0] or img.shape[1] < size[1]:
            img = _imdecode(data, path, cv2.IMREAD_COLOR)
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class FaceDataset(Dataset):
    """(image uint8 CHW, labels int64 [n_heads]) for the given paths.

    `source` loads the image at the training size; it defaults to decoding the file and can
    be swapped for the decoded-image cache. `augment` is an albumentations Compose or None;
    `mask_on` (one bool per image: does it show a mask?) reaches the augmentations that need it.
    """

    def __init__(self, paths: Sequence[str], labels: np.ndarray | None, img_size, augment=None, source=None,
                 mask_on: Sequence[bool] | None = None):  # fmt: skip
        self.paths = list(paths)
        self.mask_on = None if mask_on is None else np.asarray(mask_on, dtype=bool)
        self.labels = None if labels is None else torch.tensor(np.asarray(labels), dtype=torch.int64)
        self.img_size = tuple(img_size)
        self.augment = augment
        self.source = source

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> np.ndarray:
        if self.source is not None:
            return self.source(i)
        return read_image(self.paths[i], self.img_size)

    def __getitem__(self, i: int):
        img = self.load(i)
        if self.augment is not None:
            extra = {} if self.mask_on is None else {"mask_on": bool(self.mask_on[i])}
            img = self.augment(image=img, **extra)["image"]
        x = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))
        y = self.labels[i] if self.labels is not None else torch.zeros(0, dtype=torch.int64)
        return x, y


def seed_worker(worker_id: int) -> None:
    """Give each DataLoader worker its own, reproducible augmentation stream."""
    info = torch.utils.data.get_worker_info()
    seed = info.seed % 2**32
    np.random.seed(seed)
    augment = getattr(info.dataset, "augment", None)
    if augment is not None:
        augment.set_random_seed(seed)

"""One dataset for every task: images at the training size as uint8 CHW tensors, plus integer labels."""

from __future__ import annotations

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


def decode(path: str, flag: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """BGR uint8 image of a complete file; MaskclsError naming the file otherwise."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise MaskclsError(f"{path}: cannot read image ({e.strerror})") from None
    why = truncation(data)
    if why is not None:
        raise MaskclsError(f"{path}: {why}")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flag) if data else None
    if img is None:
        raise MaskclsError(f"{path}: cannot decode image (corrupt or not an image)")
    return img


def read_image(path: str, size: tuple[int, int] | None = None, source_hw: tuple[int, int] = (512, 384)) -> np.ndarray:
    """Decode an image to RGB uint8 HxWx3, resized to size=(H, W) if given.

    source_hw is the expected original size, used only to pick a cheap reduced decode.
    """
    flag = cv2.IMREAD_COLOR
    if size is not None:
        for factor in (8, 4, 2):
            if source_hw[0] // factor >= size[0] and source_hw[1] // factor >= size[1]:
                flag = _REDUCED[factor]
                break
    img = decode(path, flag)
    if size is not None and img.shape[:2] != tuple(size):
        if img.shape[0] < size[0] or img.shape[1] < size[1]:  # smaller than assumed: decode in full
            img = decode(path, cv2.IMREAD_COLOR)
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class FaceDataset(Dataset):
    """(image uint8 CHW, labels int64 [n_heads]) for the given paths.

    `source` loads the image at the training size; it defaults to decoding the file and can
    be swapped for the decoded-image cache. `augment` is an albumentations Compose or None.
    """

    def __init__(self, paths: Sequence[str], labels: np.ndarray | None, img_size, augment=None, source=None):
        self.paths = list(paths)
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
            img = self.augment(image=img)["image"]
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

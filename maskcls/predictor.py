"""maskcls from Python: one call from photos to answers.

    from maskcls import Predictor
    p = Predictor("runs/joint", crop=True)      # run folders, checkpoints, or one exported .onnx/.torchscript
    for answer in p.predict(["a.jpg", rgb_array]):
        print(answer["class"], answer["mask"]["name"], answer["age"]["probs"])

Photos are file paths or RGB uint8 arrays (H, W, 3). With crop=True each photo is cut first as the runs'
training faces were (their crop record: detector chain, margin, size); otherwise the whole photo is the
face. A path goes through the very decode and resize `maskcls predict` uses, so both give the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from maskcls.data.dataset import encoded_size, read_bytes, read_image
from maskcls.errors import MaskclsError
from maskcls.heads import FACTORS, classes, predict_classes
from maskcls.post.export import Exported, build_ensemble, is_exported

Photo = str | Path | np.ndarray


class Predictor:
    """Runs (their folds averaged, tuned.json applied as predict does) or an exported file, on any photos."""

    def __init__(self, source: str | Path | Sequence[str | Path], crop: bool = False, tta: bool = False,
                 tuned: bool = True, batch_size: int = 32):  # fmt: skip
        sources = [Path(source)] if isinstance(source, str | Path) else [Path(s) for s in source]
        if not sources or not all(s.exists() for s in sources):
            raise MaskclsError(f"Predictor: no such run or file: {[str(s) for s in sources if not s.exists()]}")
        self.batch_size, self.crop = batch_size, crop
        if is_exported(sources[0]):
            if len(sources) > 1:
                raise MaskclsError(f"{sources[0]}: an exported file is a whole ensemble already; give it alone")
            exported = Exported(sources[0])
            if tta and not exported.meta.get("tta"):
                raise MaskclsError(f"tta=True: {sources[0]} was exported without it (maskcls export --tta)")
            self.meta, self._run = exported.meta, exported.run
        else:
            ensemble = build_ensemble(sources, tuned=tuned, tta=tta)
            self.meta, module = ensemble.meta, ensemble.module
            names = [o["name"] for o in self.meta["outputs"]]

            def run(x: np.ndarray) -> dict[str, np.ndarray]:
                with torch.no_grad():
                    return {h: t.numpy() for h, t in zip(names, module(torch.from_numpy(x)), strict=True)}

            self._run = run
        self.size = tuple(self.meta["input"]["size"])
        self.age_upper = int(self.meta["age_upper"])
        if crop and self.meta.get("crop") is None:
            raise MaskclsError("crop=True: the runs trained on uncropped photos (no crop record to cut new ones by)")

    def predict(self, images: Photo | Sequence[Photo]) -> list[dict] | dict:
        """One dict per photo (a single photo in, a single dict out): box, mask/gender/age, class, probs."""
        single = isinstance(images, str | Path | np.ndarray)
        photos = [images] if single else list(images)
        faces, boxes, detectors = self._faces(photos)
        probs: dict[str, list[np.ndarray]] = {}
        for i in range(0, len(faces), self.batch_size):
            batch = np.stack([f.transpose(2, 0, 1) for f in faces[i : i + self.batch_size]])
            for head, p in self._run(batch).items():
                probs.setdefault(head, []).append(p)
        table = {h: np.concatenate(v) for h, v in probs.items()}
        answers = [self._answer(table, k, boxes[k], detectors[k]) for k in range(len(faces))]
        return answers[0] if single else answers

    def _faces(self, photos: list[Photo]) -> tuple[list[np.ndarray], list[list[int]], list[str | None]]:
        """Each photo as an RGB uint8 (H, W, 3) face at the model's size, the box it was cut from, the detector."""
        h, w = self.size
        if self.crop:
            from maskcls.crop import crop_images

            found = crop_images([self._full(p) for p in photos], self.meta["crop"])
            faces = [cv2.resize(c, (w, h), interpolation=cv2.INTER_AREA) for c, _, _ in found]
            return faces, [list(map(int, rect)) for _, rect, _ in found], [name for _, _, name in found]
        faces, boxes = [], []
        for p in photos:
            if isinstance(p, np.ndarray):
                img = self._array(p)
                boxes.append([0, 0, img.shape[1], img.shape[0]])
                faces.append(cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA))
            else:  # the decode predict uses (a cheap reduced JPEG decode), so both give the same numbers
                faces.append(read_image(str(p), self.size))
                hw = encoded_size(read_bytes(str(p))) or read_image(str(p)).shape[:2]
                boxes.append([0, 0, int(hw[1]), int(hw[0])])
        return faces, boxes, [None] * len(photos)

    def _full(self, p: Photo) -> np.ndarray:
        return self._array(p) if isinstance(p, np.ndarray) else read_image(str(p))

    @staticmethod
    def _array(img: np.ndarray) -> np.ndarray:
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 1:
            raise MaskclsError(f"a photo array must be RGB uint8 (H, W, 3), got {img.dtype} {img.shape}")
        return np.ascontiguousarray(img)

    def _answer(self, table: dict[str, np.ndarray], k: int, box: list[int], detector: str | None) -> dict:
        row = {h: p[k : k + 1] for h, p in table.items()}
        out: dict = {"box": box, "detector": detector}
        for head in FACTORS:
            if head in row:
                names = classes(head, self.age_upper)
                p = row[head][0]
                out[head] = {"name": names[int(p.argmax())], "probs": dict(zip(names, map(float, p), strict=True))}
        if "class" in row or set(FACTORS) <= set(row):
            out["class"] = int(predict_classes(row)[0])
        out["probs"] = {h: [float(v) for v in p[0]] for h, p in row.items()}
        return out

"""Face detectors behind one interface, in a registry: `--detectors retinaface,haar,center`.

A detector maps a list of RGB uint8 images to a list of candidate boxes per image. The crop
job asks each detector in the chain in turn for the images still without a face.

Choices (see README, "Face crops"):
- retinaface: the network of `retinaface-pytorch` 0.0.7 (0.0.8 pins torch 1.9). Installed with
  `pip install --no-deps retinaface-pytorch==0.0.7`: its declared deps (streamlit, ...) are not
  needed for the network, prior boxes and box decoding used here. Weights: the release URL via
  torch hub when online, or --retinaface-weights FILE offline. Batched, best on a GPU.
- haar: OpenCV's frontal-face cascades, then an eye-pair cascade for masked faces (the frontal
  cascades miss about half of the faces with a mask on; eyes stay visible). Ships with
  opencv-python-headless 4.x, which is why the project bounds it below 5.
- mtcnn: FaceNet's MTCNN, the detector the contest's seed teams cropped with: facenet-pytorch's
  three networks and the weights its wheel ships (2 MB), loaded here with weights_only=True.
  `make` installs it with --no-deps (its pins, torch<2.3, numpy<2, Pillow<10.3, are stale: the
  networks and `detect_face` run on current torch). Batched per image size, five landmarks per face.
- center: a fixed box where portrait photos put the face; never fails, so it ends every chain.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from maskcls import io
from maskcls.errors import MaskclsError
from maskcls.registry import Registry

RETINAFACE_URL = (
    "https://github.com/ternaus/retinaface/releases/download/0.01/retinaface_resnet50_2020-07-20-f168fae3c.zip"
)


@dataclass
class Box:
    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0
    # x, y of the left eye, right eye, nose tip, left and right mouth corner (image left/right), when
    # the detector gives them (mtcnn): what --align levels the eyes with
    landmarks: tuple[float, ...] | None = None

    @property
    def w(self) -> float:
        return self.x1 - self.x0

    @property
    def h(self) -> float:
        return self.y1 - self.y0


DETECTORS = Registry("detector")


def build_detectors(names: list[str], **options) -> list:
    """The chain of detectors, in order; each knows its registry name (`.name`, in boxes.csv)."""
    if not names:
        raise MaskclsError(f"--detectors: an empty chain finds no face; name one or more of {', '.join(DETECTORS)}")
    unknown = [n for n in names if n not in DETECTORS]
    if unknown:
        raise MaskclsError(f"unknown detector {unknown[0]!r} (known: {', '.join(DETECTORS)})")
    chain = [DETECTORS[n](**options) for n in names]
    for n, det in zip(names, chain, strict=True):
        det.name = n
    return chain


@DETECTORS.register("center")
class CenterDetector:
    """Portrait prior: the face sits in the upper middle of the frame."""

    batched = False

    def __init__(self, **_):
        pass

    def detect(self, images: list[np.ndarray]) -> list[list[Box]]:
        out = []
        for img in images:
            h, w = img.shape[:2]
            side = 0.55 * min(w, h * 0.75)
            cx, cy = w / 2, h * 0.42
            out.append([Box(cx - side / 2, cy - side * 0.6, cx + side / 2, cy + side * 0.6, 0.0)])
        return out


@DETECTORS.register("haar")
class HaarDetector:
    """Frontal-face cascades, then an eye pair (faces with a mask) turned into a face box."""

    batched = False
    WORK_SIDE = 384  # detect on a downscaled copy whose longer side is this: faster, same recall here

    def __init__(self, **_):
        # A CascadeClassifier is not safe to share between threads (two identical crop runs gave
        # different boxes for 1 image in 5): every thread that detects gets its own cascades.
        self._local = threading.local()
        self._cascades()  # fail now, not in a worker thread, when the files are missing

    def _cascades(self) -> tuple[list, object]:
        if not hasattr(self._local, "faces"):
            root = cv2.data.haarcascades
            faces = [cv2.CascadeClassifier(root + f) for f in
                     ("haarcascade_frontalface_alt2.xml", "haarcascade_frontalface_default.xml")]  # fmt: skip
            eyes = cv2.CascadeClassifier(root + "haarcascade_eye.xml")
            if any(c.empty() for c in [*faces, eyes]):
                raise MaskclsError(
                    f"OpenCV Haar cascades not found in {root} (opencv-python-headless 5.x ships none; use 4.x)"
                )
            self._local.faces, self._local.eyes = faces, eyes
        return self._local.faces, self._local.eyes

    def detect(self, images: list[np.ndarray]) -> list[list[Box]]:
        return [self._one(img) for img in images]

    def _one(self, img: np.ndarray) -> list[Box]:
        s = min(1.0, self.WORK_SIDE / max(img.shape[:2]))
        g = cv2.equalizeHist(cv2.cvtColor(cv2.resize(img, None, fx=s, fy=s), cv2.COLOR_RGB2GRAY))
        min_side = int(0.2 * min(g.shape))
        faces, _ = self._cascades()
        for cascade in faces:
            found = cascade.detectMultiScale(g, scaleFactor=1.08, minNeighbors=3, minSize=(min_side, min_side))
            if len(found):
                return [Box(x / s, y / s, (x + w) / s, (y + h) / s, 1.0) for x, y, w, h in found]
        box = self._eye_pair(g)
        return [] if box is None else [Box(box.x0 / s, box.y0 / s, box.x1 / s, box.y1 / s, 0.5)]

    def _eye_pair(self, g: np.ndarray) -> Box | None:
        side = min(g.shape)
        _, eye_cascade = self._cascades()
        eyes = eye_cascade.detectMultiScale(g, scaleFactor=1.08, minNeighbors=4, minSize=(int(side * 0.04),) * 2,
                                            maxSize=(int(side * 0.25),) * 2)  # fmt: skip
        best = None
        for (ax, ay, aw, ah), (bx, by, bw, bh) in itertools.combinations(eyes, 2):
            a, b = np.array([ax + aw / 2, ay + ah / 2]), np.array([bx + bw / 2, by + bh / 2])
            d, dy = float(np.linalg.norm(a - b)), abs(a[1] - b[1])
            # Two eyes: level, similar size, a plausible distance apart.
            if not 0.08 * side < d < 0.45 * side or dy > 0.35 * d or abs(aw - bw) > 0.5 * max(aw, bw):
                continue
            if best is None or d - dy > best[0]:
                best = (d - dy, (a + b) / 2, d)
        if best is None:
            return None
        _, (cx, cy), d = best
        cy += 0.55 * d  # the face centre is below the eyes
        return Box(cx - 1.1 * d, cy - 1.3 * d, cx + 1.1 * d, cy + 1.3 * d, 0.5)


@DETECTORS.register("retinaface")
class RetinaFaceDetector:
    """RetinaFace (ResNet-50) from retinaface-pytorch, batched on a fixed input size."""

    batched = True

    def __init__(self, weights: str | None = None, device: str = "cpu", threshold: float = 0.7,
                 input_size: tuple[int, int] = (512, 384), **_):  # fmt: skip
        import torch

        try:
            from retinaface.box_utils import decode
            from retinaface.network import RetinaFace
            from retinaface.prior_box import priorbox
        except ImportError:
            raise MaskclsError(
                "the retinaface detector needs `pip install --no-deps retinaface-pytorch==0.0.7`"
            ) from None
        self.torch, self.decode, self.threshold, self.device = torch, decode, threshold, torch.device(device)
        self.size = input_size  # (H, W): contest photos are 512x384, resized to this
        import warnings

        with warnings.catch_warnings():  # the package still passes torchvision's old `pretrained=`
            warnings.simplefilter("ignore")
            self.net = RetinaFace(name="Resnet50", pretrained=False, in_channels=256, out_channels=256,
                                  return_layers={"layer2": 1, "layer3": 2, "layer4": 3})  # fmt: skip
        state = self._state_dict(weights)
        try:
            self.net.load_state_dict(state)  # strict: every tensor from the file
        except RuntimeError as e:
            flag = " (--retinaface-weights)" if weights else ""
            raise MaskclsError(f"retinaface: {self.path}{flag}: the weights do not fit RetinaFace-ResNet50 "
                               f"({io._first_line(e)})") from None  # fmt: skip
        self.net.to(self.device).eval()
        self.priors = priorbox(min_sizes=[[16, 32], [64, 128], [256, 512]], steps=[8, 16, 32], clip=False,
                               image_size=self.size).to(self.device)  # fmt: skip

    def _state_dict(self, weights: str | None) -> dict:
        """The file named; else torch hub's checkpoint folder or a weight package, by the release's file
        name; else the release URL, online (into the hub folder). The name's hex part is the release's
        tag, not known to be a SHA-256 prefix, so it is not checked; the SHA-256 is printed."""
        from maskcls import weights as wts

        name = RETINAFACE_URL.rsplit("/", 1)[-1]
        if weights:
            if not Path(weights).is_file():
                raise MaskclsError(f"{weights}: RetinaFace weights file not found")
            found = wts.Found("file", Path(weights), wts.sha256(Path(weights)))
        else:
            found = wts.find_file([name], check_hash=False)
        if found is None:
            try:
                path = wts.download_to_hub(RETINAFACE_URL, progress=True)
            except Exception as e:  # offline, refused
                raise MaskclsError(
                    f"retinaface: {name} is not in {wts.hub_checkpoints()} and cannot be downloaded "
                    f"({str(e).splitlines()[0][:160]}); offline, pass --retinaface-weights FILE"
                ) from None
            found = wts.Found("download", path, wts.sha256(path))
        self.source, self.path = wts.describe(found), found.path
        state = wts.state_of(wts.read_file(found.path), found.path)
        return {k.removeprefix("model."): v for k, v in state.items()}

    def detect(self, images: list[np.ndarray]) -> list[list[Box]]:
        torch = self.torch
        h, w = self.size
        mean = np.array([0.485, 0.456, 0.406]) * 255
        std = np.array([0.229, 0.224, 0.225]) * 255
        batch, scales = [], []
        for img in images:
            sy, sx = img.shape[0] / h, img.shape[1] / w
            batch.append(((cv2.resize(img, (w, h)) - mean) / std).transpose(2, 0, 1))
            scales.append((sx, sy))
        x = torch.from_numpy(np.stack(batch)).float().to(self.device)
        with torch.no_grad():
            loc, conf, _ = self.net(x)
        scores = conf.softmax(-1)[..., 1]
        out = []
        for i, (sx, sy) in enumerate(scales):
            keep = scores[i] > self.threshold
            boxes = self.decode(loc[i][keep], self.priors[keep], [0.1, 0.2]).cpu().numpy()
            s = scores[i][keep].cpu().numpy()
            boxes = boxes * np.array([w * sx, h * sy, w * sx, h * sy])
            order = np.argsort(-s)[:20]
            out.append([Box(*boxes[j].tolist(), float(s[j])) for j in order])
        return out


@DETECTORS.register("mtcnn")
class MTCNNDetector:
    """FaceNet's MTCNN (P-, R- and O-Net cascade): boxes, scores and five landmarks per face."""

    batched = True
    THRESHOLDS = (0.6, 0.7, 0.7)  # P-, R-, O-Net score thresholds: facenet-pytorch's (and the paper's) defaults
    FACTOR = 0.709  # image pyramid step, the paper's
    # Smallest face searched, as a share of the image's shorter side (at least MTCNN's 12 px). The first
    # pyramid level costs most; a contest face fills about half the frame, and a tenth still finds the
    # small faces of group photos (facenet-pytorch's fixed 20 px costs 4x at 384x512 for no face more here).
    MIN_FACE = 0.1

    def __init__(self, device: str = "cpu", **_):
        import torch

        try:
            import facenet_pytorch
            from facenet_pytorch.models.mtcnn import ONet, PNet, RNet
            from facenet_pytorch.models.utils.detect_face import detect_face
        except ImportError:
            raise MaskclsError(
                "the mtcnn detector needs facenet-pytorch (pip install --no-deps facenet-pytorch==2.6.0)"
            ) from None
        from maskcls import io

        root = Path(facenet_pytorch.__file__).parent / "data"
        self.nets = []
        for net in (PNet(pretrained=False), RNet(pretrained=False), ONet(pretrained=False)):
            path = root / f"{type(net).__name__.lower()}.pt"
            net.load_state_dict(io.torch_load(path, "MTCNN weights"))  # strict: every tensor from the file
            self.nets.append(net.to(device).eval())
        self.source = f"weights {root} (package facenet_pytorch)"
        self.torch, self.detect_face, self.device = torch, detect_face, torch.device(device)

    def detect(self, images: list[np.ndarray]) -> list[list[Box]]:
        out: list[list[Box]] = [[] for _ in images]
        by_shape: dict[tuple, list[int]] = {}
        for i, img in enumerate(images):  # MTCNN batches images of one size
            if min(img.shape[:2]) >= 12:  # its smallest window: a smaller image holds no face it can find
                by_shape.setdefault(img.shape, []).append(i)
        for shape, idx in by_shape.items():
            min_face = max(12.0, self.MIN_FACE * min(shape[:2]))
            with self.torch.inference_mode():
                boxes, points = self.detect_face(np.stack([images[i] for i in idx]), min_face, *self.nets,
                                                 self.THRESHOLDS, self.FACTOR, self.device)  # fmt: skip
            for i, b, p in zip(idx, boxes, points, strict=True):
                rows, marks = np.reshape(b, (-1, 5)).tolist(), np.reshape(p, (-1, 10)).tolist()
                out[i] = [Box(*r, landmarks=tuple(m)) for r, m in zip(rows, marks, strict=True)]
        return out


def most_plausible(boxes: list[Box], width: int, height: int) -> Box | None:
    """The face to keep among several: large, central, confident."""
    if not boxes:
        return None

    def plausibility(b: Box) -> float:
        area = max(b.w, 1) * max(b.h, 1) / (width * height)
        off = np.hypot((b.x0 + b.x1) / 2 / width - 0.5, (b.y0 + b.y1) / 2 / height - 0.45)
        return (0.5 + b.score) * np.sqrt(area) * (1.0 - off)

    return max(boxes, key=plausibility)

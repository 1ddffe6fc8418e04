"""A team's models as one file: `maskcls export RUN... --format onnx|torchscript --out FILE`.

The graph takes a batch of uint8 RGB face crops (B, 3, H, W) at the runs' input size, exactly what
`predict` feeds its models (the models normalise their own input, so the preprocessing is inside the
graph), and returns each head's probabilities averaged over every fold checkpoint of every run given,
as `predict` does: a run's tuned.json applied unless tuned=False, the flipped image averaged in with
tta=True. Runs of different tasks (a mask, a gender and an age run) each feed the heads they have.

Beside FILE, FILE.json (the sidecar) says how to feed it and read it: input size and layout, the
output heads in order with their class names, age_upper, the crop record of the data the runs trained
on (so new photos are cut as the training faces were), the source checkpoints with their SHA-256 and
the maskcls version. `load_exported` runs either format (ONNX Runtime on the CPU, or TorchScript) behind
one call; `maskcls predict FILE` and `maskcls.Predictor(FILE)` use it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import maskcls
from maskcls import io
from maskcls.engine.kinds import build_heads
from maskcls.errors import MaskclsError
from maskcls.heads import FACTORS, HEADS, classes
from maskcls.models import load_for_inference
from maskcls.post.tune import load_tuned
from maskcls.runs import Run, agree, fold_checkpoints, run_inputs
from maskcls.weights import sha256

FORMATS = {"onnx": (".onnx",), "torchscript": (".torchscript", ".pt")}  # format -> the file names it writes
INPUT = "images"


class Member(nn.Module):
    """One checkpoint: its model, its head kinds (logits -> probabilities) and its tuned biases."""

    def __init__(self, model: nn.Module, kinds: dict, biases: dict[str, list[float]], tta: bool):
        super().__init__()
        self.model, self.kinds, self.tta = model, kinds, tta
        for head, bias in biases.items():
            self.register_buffer(f"bias_{head}", torch.tensor(bias, dtype=torch.float32).view(1, -1))
        self.biased = tuple(biases)

    def probs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = self.model(x)
        return {head: kind.probs(logits[head]) for head, kind in self.kinds.items()}

    def outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.probs(x)
        if self.tta:  # as engine.inference.infer: the mean of the photo's and its mirror's probabilities
            flipped = self.probs(torch.flip(x, dims=[3]))
            out = {h: (p + flipped[h]) / 2 for h, p in out.items()}
        for head in self.biased:  # as post.tune.adjusted: a bias on the log-probabilities, renormalised
            z = torch.log(out[head].clamp(min=1e-12)) + getattr(self, f"bias_{head}")
            out[head] = torch.softmax(z, dim=1)
        return out


class Averaged(nn.Module):
    """uint8 (B, 3, H, W) -> a tuple of probabilities, one per head of `heads`, each the mean of the
    members that have that head (an 18-way head's per-factor marginals follow it when asked)."""

    def __init__(self, members: list[Member], heads: list[str]):
        super().__init__()
        self.members, self.heads = nn.ModuleList(members), list(heads)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, int] = {}
        for member in self.members:
            for head, p in member.outputs(x).items():
                sums[head] = sums[head] + p if head in sums else p
                counts[head] = counts.get(head, 0) + 1
        out = {h: sums[h] / counts[h] for h in sums}
        if "class" in out:  # the marginals predict writes beside an 18-way head (heads.marginals)
            p = out["class"].view(-1, *(HEADS[h].size() for h in FACTORS))
            out.setdefault("mask", p.sum((2, 3)))
            out.setdefault("gender", p.sum((1, 3)))
            out.setdefault("age", p.sum((1, 2)))
        return tuple(out[h] for h in self.heads)


@dataclass
class Ensemble:
    """The eager ensemble of some runs, and what the sidecar says of it."""

    module: Averaged
    meta: dict


def crop_record(cfg) -> dict | None:
    """The crop.json of the data a run trained on (how its faces were cut), or None (uncropped data)."""
    path = Path(cfg.get("data") or "") / "crop.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise MaskclsError(f"{path}: unreadable crop record ({e})") from None


def build_ensemble(runs: list[Path], tuned: bool = True, tta: bool = False) -> Ensemble:
    """Every fold checkpoint of every run, in eval mode on the CPU, as one module."""
    checkpoints = [c for r in runs for c in fold_checkpoints(r)]
    members, configs, sources, sizes, crops = [], {}, [], {}, {}
    heads: list[str] = []
    for path in checkpoints:
        model, ckpt = load_for_inference(path, torch.device("cpu"))
        cfg = ckpt["config"]
        configs[str(path)] = cfg
        run = Run.of_checkpoint(path)
        choices = load_tuned(run.tuned_path if run else None) if tuned else {}
        kinds = build_heads(cfg, choices.get("age", {}).get("cutoffs"))
        biases = {h: list(map(float, c["bias"])) for h, c in choices.items() if h in kinds and "bias" in c}
        members.append(Member(model, kinds, biases, tta))
        heads += [h for h in kinds if h not in heads]
        sizes[str(path)] = tuple(cfg["img_size"])
        crops[str(path)] = crop_record(cfg)
        sources.append({"checkpoint": str(path), "sha256": sha256(path), "task": cfg["task"],
                        "backbone": cfg["backbone"], "tuned": bool(biases)})  # fmt: skip
    age_upper = agree(configs)  # one meaning of "30-59" across the members, or one line naming the two
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{p} {'x'.join(map(str, s))}" for p, s in list(sizes.items())[:3])
        raise MaskclsError(f"the runs were trained at different input sizes ({shown}): one graph takes one size")
    if len({json.dumps(c, sort_keys=True) for c in crops.values()}) > 1:
        raise MaskclsError("the runs were trained on differently cropped data: one file can cut new photos one way")
    if "class" in heads:
        heads += [h for h in FACTORS if h not in heads]
    size = list(next(iter(sizes.values())))
    meta = {
        "maskcls_version": maskcls.__version__,
        "input": {"name": INPUT, "dtype": "uint8", "layout": "NCHW", "channels": "RGB", "size": size},
        "outputs": [{"name": h, "classes": classes(h, age_upper)} for h in heads],
        "age_upper": age_upper,
        "tta": tta,
        "crop": next(iter(crops.values())),
        "sources": sources,
    }
    return Ensemble(Averaged(members, heads).eval(), meta)


def export(runs: list[Path], fmt: str, out: Path, tuned: bool = True, tta: bool = False) -> dict:
    """Write the runs' ensemble as one ONNX or TorchScript file, and its sidecar FILE.json; returns the sidecar."""
    out = Path(out)
    if fmt not in FORMATS:
        raise MaskclsError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    if out.suffix.lower() not in FORMATS[fmt]:
        raise MaskclsError(f"--out {out}: a {fmt} file's name ends in {' or '.join(FORMATS[fmt])}")
    io.check_apart(out, "--out", run_inputs(runs))  # a run folder is an input: nothing is written inside it
    io.check_writable(out)
    ensemble = build_ensemble(runs, tuned=tuned, tta=tta)
    h, w = ensemble.meta["input"]["size"]
    example = torch.zeros(2, 3, h, w, dtype=torch.uint8)
    names = [o["name"] for o in ensemble.meta["outputs"]]
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notices about Python values: the members' loops unroll as meant
        if fmt == "onnx":
            writer = _onnx_writer(ensemble.module, example, names)
        else:
            traced = torch.jit.trace(ensemble.module, example, check_trace=False)
            writer = lambda tmp: torch.jit.save(traced, tmp)  # noqa: E731  (traced above: only the save can fail)
        io.atomic_write(out, writer)
    meta = {"format": fmt, "file": out.name, "file_sha256": sha256(out), **ensemble.meta}
    io.write_json(sidecar_path(out), meta)
    return meta


def _onnx_writer(module: nn.Module, example: torch.Tensor, names: list[str]):
    try:
        import onnx  # noqa: F401  (torch's exporter needs it)
    except ImportError:
        raise MaskclsError("--format onnx needs the onnx extra: pip install 'maskcls[onnx]'") from None

    def write(tmp: str) -> None:
        try:
            torch.onnx.export(module, (example,), tmp, input_names=[INPUT], output_names=names, opset_version=17,
                              dynamic_axes={INPUT: {0: "batch"}, **{n: {0: "batch"} for n in names}},
                              dynamo=False)  # fmt: skip
        except OSError:
            raise
        except Exception as e:  # an operator the exporter cannot write: say so, not "disk full"
            raise MaskclsError(f"--format onnx: the model cannot be exported ({io._first_line(e)})") from None

    return write


def sidecar_path(path: Path) -> Path:
    return Path(f"{path}.json")


def is_exported(path: Path) -> bool:
    """An exported file, not a run or a checkpoint: *.onnx, *.torchscript, or a *.pt with a sidecar."""
    path = Path(path)
    return path.is_file() and (path.suffix.lower() in (".onnx", ".torchscript") or sidecar_path(path).is_file())


class Exported:
    """An exported file with its sidecar: `run(x)` takes uint8 (B, 3, H, W) and returns {head: probabilities}."""

    def __init__(self, path: Path):
        self.path = Path(path)
        side = sidecar_path(self.path)
        try:
            self.meta = json.loads(side.read_text())
            names = [o["name"] for o in self.meta["outputs"]]
            self.size = tuple(int(v) for v in self.meta["input"]["size"])
            fmt, self.age_upper = self.meta["format"], int(self.meta["age_upper"])
        except FileNotFoundError:
            raise MaskclsError(f"{self.path}: no sidecar {side.name} beside it (maskcls export writes both)") from None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise MaskclsError(f"{side}: not a maskcls export sidecar ({type(e).__name__}: {e})") from None
        if not (set(names) <= set(HEADS) and len(self.size) == 2 and min(self.size) >= 8 and max(self.size) <= 2048):
            raise MaskclsError(f"{side}: its outputs or input size are not what maskcls export writes")
        self.heads = names
        if fmt not in FORMATS:
            raise MaskclsError(f"{side}: format {fmt!r} is not one of {', '.join(FORMATS)}")
        self._run = _onnx_runner(self.path, names) if fmt == "onnx" else _torchscript_runner(self.path)

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.uint8)
        if x.ndim != 4 or x.shape[1:] != (3, *self.size):
            raise MaskclsError(f"{self.path}: takes uint8 (batch, 3, {self.size[0]}, {self.size[1]}), got {x.shape}")
        return dict(zip(self.heads, self._run(x), strict=True))


def _onnx_runner(path: Path, names: list[str]):
    try:
        import onnxruntime as ort
    except ImportError:
        raise MaskclsError(f"{path}: running ONNX needs the onnx extra: pip install 'maskcls[onnx]'") from None
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types
        raise MaskclsError(f"{path}: not a loadable ONNX model ({io._first_line(e)})") from None
    return lambda x: session.run(names, {INPUT: x})


def _torchscript_runner(path: Path):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # TorchScript's deprecation notice
            module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as e:  # RuntimeError for anything that is not a TorchScript archive
        raise MaskclsError(f"{path}: not a loadable TorchScript file ({io._first_line(e)})") from None

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in module(torch.from_numpy(x))]

    return run

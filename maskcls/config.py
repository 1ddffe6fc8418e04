"""Configuration: args.json < configs/<task>.json < --config FILE < --set KEY=VALUE < flags.

The defaults ship inside the package (maskcls/defaults/args.json and configs/<task>.json), so
a wheel installed anywhere has them; the repository root's args.json and configs/ are links to
those very files (what a clone edits and commits is what the wheel ships: one source). A team's
own args.json and configs/<task>.json — in the folder $MASKCLS_CONFIG_DIR names, else the
working directory — override the packaged file of the same name, key by key. Every key must
exist in the packaged args.json (the documented defaults); a misspelt key is an error with the
closest matches, never silently ignored. Values are checked against the default's type. The
resolved config is written into each run directory and each checkpoint; `maskcls config show`
prints it with where each value came from.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
from pathlib import Path

from maskcls import labels
from maskcls.errors import MaskclsError
from maskcls.heads import TASKS

ROOT = Path(__file__).resolve().parent.parent  # the repository, when running from a clone (tests, bench)
PACKAGED = Path(__file__).resolve().parent / "defaults"  # args.json and configs/, inside the package
ARGS_FILE = PACKAGED / "args.json"
CONFIG_DIR = PACKAGED / "configs"
OWN_DIR_ENV = "MASKCLS_CONFIG_DIR"

# Keys whose value names an entry of a registry: the registry is the one list of what exists,
# so a new loss, optimizer, schedule, augmentation preset or split is accepted where it is added.
REGISTRIES = {
    "optimizer": ("maskcls.engine.optim", "OPTIMIZERS"),
    "scheduler": ("maskcls.engine.optim", "SCHEDULERS"),
    "loss": ("maskcls.engine.losses", "LOSSES"),
    "augment": ("maskcls.data.transforms", "PRESETS"),
    "split_method": ("maskcls.data.splits", "SPLITS"),
    "age_head": ("maskcls.engine.kinds", "KINDS"),
    "cutmix_mode": ("maskcls.engine.mixers", "CUTMIX_MODES"),
    "cutmix_partner": ("maskcls.engine.mixers", "PARTNERS"),
}
CHOICES = {
    "task": [t for t in TASKS if "/" not in t],
    "head": ["multi", "flat18"],
    "device": ["auto", "cpu", "cuda", "mps"],
}


def choices(key: str) -> list[str] | None:
    """The allowed values of a config key, or None for a free value."""
    if key in REGISTRIES:
        module, name = REGISTRIES[key]
        return list(getattr(importlib.import_module(module), name))
    return CHOICES.get(key)


# Allowed ranges, checked once when the layers merge: (low, high, low inclusive, high inclusive).
INF = float("inf")
RANGES = {
    "epochs": (1, 10_000, True, True),
    "batch_size": (1, 65_536, True, True),
    "lr": (0, 1000, False, True),
    "weight_decay": (0, 1, True, True),
    "momentum": (0, 1, True, False),
    "warmup_epochs": (0, 10_000, True, True),
    "step_size": (1, 10_000, True, True),
    "gamma": (0, 1, False, True),
    "exp_gamma": (0, 1, False, True),
    "label_smoothing": (0, 1, True, False),
    "focal_gamma": (0, 10, True, True),
    "oversample": (0, 1, True, True),
    "mixup": (0, 100, True, True),
    "cutmix": (0, 100, True, True),
    "ema": (0, 1, True, False),
    "clip_grad": (0, 1e6, True, True),
    "age_upper": (31, 120, True, True),
    "folds": (2, 1000, True, True),
    "accum_steps": (1, 1024, True, True),
    "patience": (0, 10_000, True, True),
    "workers": (-1, 256, True, True),
    "seed": (0, 2**32 - 1, True, True),  # what numpy's and torch's generators take
}
IMG_SIDE = (16, 1024)  # the contest's photos are 512x384: a larger input only upsamples (and a huge cache)


def flag_name(key: str, source: str) -> str:
    """How the user spelled key: `--batch-size` on the command line, `batch_size` in a file."""
    return f"--{key.replace('_', '-')}" if source == "command line" else key


def _in_range(key: str, value, source: str) -> None:
    lo, hi, lo_in, hi_in = RANGES[key]
    ok = (value >= lo if lo_in else value > lo) and (value <= hi if hi_in else value < hi)
    if not ok:
        interval = f"{'[' if lo_in else '('}{lo}, {hi}{']' if hi_in else ')'}"
        raise MaskclsError(f"{source}: {flag_name(key, source)} must be in {interval} (got {value})")


def check_name(name: str, what: str = "--name") -> str:
    """A run name is one plain folder name: no path separators, no '..', not hidden."""
    if not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise MaskclsError(f"{what} must be a plain folder name, not a path (got {name!r})")
    return name


class Config(dict):
    """A dict with attribute access: cfg.lr == cfg["lr"]."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value


def load_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise MaskclsError(f"{path}: config file not found")
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise MaskclsError(f"{path}: invalid JSON ({e.msg} at line {e.lineno})") from None
    except RecursionError:
        raise MaskclsError(f"{path}: JSON nested too deeply to be a config") from None
    except (UnicodeDecodeError, OSError) as e:
        raise MaskclsError(f"{path}: cannot read config ({e})") from None
    if not isinstance(obj, dict):
        raise MaskclsError(f"{path}: expected a JSON object of key: value")
    return obj


def own_dir() -> Path:
    """Where a team's own args.json / configs/ live: $MASKCLS_CONFIG_DIR, else the working directory."""
    return Path(os.environ.get(OWN_DIR_ENV) or ".")


def layers(task: str | None) -> list[Path]:
    """The files that set defaults, lowest first: packaged args.json, own args.json, packaged preset, own preset."""
    pairs = [(ARGS_FILE, own_dir() / "args.json")]
    if task is not None:
        pairs.append((task_config_path(task), own_dir() / "configs" / f"{task}.json"))
    out = []
    for packaged, own in pairs:
        out.append(packaged)
        if own.is_file() and own.resolve() != packaged.resolve():
            out.append(own)
    return out


def defaults() -> Config:
    """The packaged args.json with a team's own args.json over it."""
    packaged, *own = layers(None)
    cfg = Config(load_json(packaged))
    for path in own:
        cfg = merge(cfg, load_json(path), str(path))
    return cfg


def task_config_path(task: str) -> Path:
    return CONFIG_DIR / f"{task}.json"


def config_file_path(name: str | Path) -> Path:
    """--config FILE, or the name of a preset (`--config contest-recipe`): own configs/ first, then packaged."""
    path = Path(name)
    if path.is_file() or path.suffix == ".json" or len(path.parts) > 1:
        return path
    for folder in (own_dir() / "configs", CONFIG_DIR):
        if (folder / f"{name}.json").is_file():
            return folder / f"{name}.json"
    presets = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
    raise MaskclsError(f"--config {name}: no such file, nor a preset (presets: {', '.join(presets)})")


def merge(base: Config, update: dict, source: str) -> Config:
    """base updated by update; unknown keys and wrong types raise, naming source."""
    out = Config(base)
    for key, value in update.items():
        if key not in base:
            close = difflib.get_close_matches(key, list(base), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise MaskclsError(f"{source}: unknown config key {key!r}{hint}")
        out[key] = _check(key, value, base[key], source)
    return out


def _check(key: str, value, default, source: str):
    value = _check_type(key, value, default, source)
    if value is not None and key in RANGES:
        _in_range(key, value, source)
    if key == "loss_weights" and any(not isinstance(w, int | float) or w < 0 for w in value.values()):
        raise MaskclsError(f"{source}: loss_weights must be numbers >= 0 (got {value})")
    if key == "name" and value is not None:
        check_name(value, flag_name(key, source))
    if key == "drop_ages" and value is not None:
        try:
            labels.parse_ages(value)
        except ValueError as e:
            raise MaskclsError(f"{source}: {flag_name(key, source)}: {e}") from None
    return value


def _check_type(key: str, value, default, source: str):
    if key == "img_size":
        if not isinstance(value, int | list | tuple) or isinstance(value, bool):
            raise MaskclsError(f"{source}: {flag_name(key, source)} must be one number or H W (got {value!r})")
        value = [value, value] if isinstance(value, int) else list(value)
        if len(value) == 1:
            value = value * 2
        lo, hi = IMG_SIDE
        if len(value) != 2 or not all(isinstance(v, int) and lo <= v <= hi for v in value):
            raise MaskclsError(
                f"{source}: {flag_name(key, source)} must be one number or H W, each in {lo}..{hi} (got {value})"
            )
        return value
    if key == "fold":  # a fold number, "all" (every fold) or "none" (the final fit: every person trains)
        if value not in ("all", "none") and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            raise MaskclsError(f"{source}: fold must be a fold number, 'all' or 'none' (got {value!r})")
        return value
    allowed = choices(key)
    if allowed is not None and value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise MaskclsError(
            f"{source}: {flag_name(key, source)} must be one of {', '.join(allowed)} (got {value!r}{hint})"
        )
    if value is None:
        return value
    if default is None:  # keys without a default are paths, names or text (drop_ages may also be a list)
        allowed = (str, list) if key == "drop_ages" else (str,)
        if not isinstance(value, allowed):
            raise MaskclsError(f"{source}: {flag_name(key, source)} must be text (got {value!r})")
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise MaskclsError(f"{source}: {flag_name(key, source)} must be {type(default).__name__} (got {value!r})")
    if isinstance(default, dict):
        unknown = set(value) - set(default)
        if unknown:
            raise MaskclsError(f"{source}: {key} has unknown entries {sorted(unknown)} (known: {sorted(default)})")
        value = {**default, **value}
    return value


def resolve(task: str | None = None, config_file: str | Path | None = None, flags: dict | None = None,
            sets: dict | None = None, sources: dict | None = None) -> Config:  # fmt: skip
    """Merge the layers once: args.json < task preset < config file < --set KEY=VALUE < flags (None = not given).

    `sources`, when given, is filled with where each key's value came from.
    """
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    both = sorted(set(given) & set(sets or {}))
    if both:
        raise MaskclsError(f"--set {both[0]}=... and {flag_name(both[0], 'command line')} both given: keep one")
    files = layers(task)
    cfg = Config(load_json(files[0]))
    steps = [(str(f), load_json(f)) for f in files[1:]]
    if config_file is not None:
        path = config_file_path(config_file)
        steps.append((str(path), load_json(path)))
    steps += [("--set", sets or {}), ("command line", given)]
    origin = {k: str(files[0]) for k in cfg}
    for source, update in steps:
        cfg = merge(cfg, update, source)
        origin.update({k: source for k in update})
    if sources is not None:
        sources.update(origin)
    if cfg.fold not in ("all", "none") and cfg.fold >= cfg.folds:
        raise MaskclsError(
            f"fold {cfg.fold} does not exist with {cfg.folds} folds (use 0..{cfg.folds - 1}, 'all' or 'none')"
        )
    if task is not None and cfg.task != task:
        raise MaskclsError(f"{origin['task']}: sets task {cfg.task!r} but the command trains {task!r} "
                           f"(use train-{cfg.task}, or leave task out)")  # fmt: skip
    return cfg

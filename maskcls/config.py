"""Configuration: args.json < configs/<task>.json < --config FILE < --set KEY=VALUE < flags.

The defaults ship inside the package (maskcls/defaults/args.json and configs/<task>.json), so
a wheel installed anywhere has them; the repository root's args.json and configs/ are links to
those very files (what a clone edits and commits is what the wheel ships: one source). A team's
own args.json and configs/<task>.json — in the folder $MASKCLS_CONFIG_DIR names, else the
working directory — override the packaged file of the same name, key by key. Every key must
be a setting of maskcls/settings.py (where each is declared once, with its default, meaning and
checks; the packaged args.json is written from it); a misspelt key is an error with the closest
matches, never silently ignored, and each value is checked against its record. The
resolved config is written into each run directory and each checkpoint; `maskcls config show`
prints it with where each value came from.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

from maskcls import registry, settings
from maskcls.errors import MaskclsError

ROOT = Path(__file__).resolve().parent.parent  # the repository, when running from a clone (tests, bench)
PACKAGED = Path(__file__).resolve().parent / "defaults"  # args.json and configs/, inside the package
ARGS_FILE = PACKAGED / "args.json"
CONFIG_DIR = PACKAGED / "configs"
OWN_DIR_ENV = "MASKCLS_CONFIG_DIR"


def choices(key: str) -> list[str] | None:
    """The allowed values of a setting, or None for a free value (a registry's entries, or the record's list)."""
    allowed = settings.BY_KEY[key].choices
    return registry.names(allowed) if isinstance(allowed, str) else list(allowed) if allowed else None


def flag_name(key: str, source: str) -> str:
    """How the user spelled key: `--batch-size` on the command line, `batch_size` in a file."""
    return f"--{key.replace('_', '-')}" if source == "command line" else key


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


def defaults(registries: bool = True) -> Config:
    """Every setting's default (maskcls/settings.py), the packaged args.json, a team's own args.json over it."""
    cfg = Config(settings.defaults())
    for path in layers(None):
        cfg = merge(cfg, load_json(path), str(path), registries)
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


def merge(base: Config, update: dict, source: str, registries: bool = True) -> Config:
    """base updated by update; unknown keys and wrong values raise, naming source.

    registries=False leaves out the check of names against the registries (a run's saved config,
    read back by code that builds nothing from them: what it names is checked where it is built).
    """
    out = Config(base)
    for key, value in update.items():
        if key not in base:
            close = difflib.get_close_matches(key, list(base), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise MaskclsError(f"{source}: unknown config key {key!r}{hint}")
        out[key] = _check(key, value, base[key], source, registries)
    return out


def _check(key: str, value, default, source: str, registries: bool = True):
    """value checked against the key's record: type, choices (a registry's entries), range, own check."""
    s = settings.BY_KEY[key]
    value = _check_type(s, value, default, source)
    where = f"{source}: {flag_name(key, source)}"
    if value is None:
        return value
    if s.choices and (registries or not isinstance(s.choices, str)):
        allowed = choices(key)
        if value not in allowed:
            close = difflib.get_close_matches(str(value), allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise MaskclsError(f"{where} must be one of {', '.join(allowed)} (got {value!r}{hint})")
    if s.range is not None:
        lo, hi, lo_in, hi_in = s.range
        if not ((value >= lo if lo_in else value > lo) and (value <= hi if hi_in else value < hi)):
            interval = f"{'[' if lo_in else '('}{lo}, {hi}{']' if hi_in else ')'}"
            raise MaskclsError(f"{where} must be in {interval} (got {value})")
    if s.check is not None:
        try:
            value = s.check(value)
        except ValueError as e:
            raise MaskclsError(f"{where}: {e}") from None
    return value


def _check_type(s: settings.Setting, value, default, source: str):
    """The record's own check owns its type (img_size, fold); else the default's type, or text for None."""
    if value is None or (s.check is not None and s.default is not None and not isinstance(s.default, dict)):
        return value
    where = f"{source}: {flag_name(s.key, source)}"
    if s.default is None:  # paths, names and text (drop_ages may also be a list: its check says)
        if not isinstance(value, str) and s.check is None:
            raise MaskclsError(f"{where} must be text (got {value!r})")
        return value
    default = s.default if default is None else default
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
        raise MaskclsError(f"{where} must be {s.type_name()} (got {value!r})")
    if isinstance(default, dict):
        unknown = set(value) - set(default)
        if unknown:
            raise MaskclsError(f"{source}: {s.key} has unknown entries {sorted(unknown)} (known: {sorted(default)})")
        value = {**default, **value}
    return value


def resolve(task: str | None = None, config_file: str | Path | None = None, flags: dict | None = None,
            sets: dict | None = None, sources: dict | None = None, registries: bool = True) -> Config:  # fmt: skip
    """Merge the layers once: args.json < task preset < config file < --set KEY=VALUE < flags (None = not given).

    `sources`, when given, is filled with where each key's value came from; registries=False
    leaves the names of registry entries unchecked (for --help, which imports no engine).
    """
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    both = sorted(set(given) & set(sets or {}))
    if both:
        raise MaskclsError(f"--set {both[0]}=... and {flag_name(both[0], 'command line')} both given: keep one")
    files = layers(task)
    cfg = Config(settings.defaults())
    steps = [(str(f), load_json(f)) for f in files]
    if config_file is not None:
        path = config_file_path(config_file)
        steps.append((str(path), load_json(path)))
    steps += [("--set", sets or {}), ("command line", given)]
    origin = {k: str(files[0]) for k in cfg}
    for source, update in steps:
        cfg = merge(cfg, update, source, registries)
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

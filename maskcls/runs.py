"""Run directories: `Run` owns one (its layout, its config, the checks runs share); new ones number
themselves (runs/age-resnet18, runs/age-resnet18-2, ...).

Layout of a run (one experiment; every fold it trains is a sub-folder):
    config.json  label_map.json  folds.csv  summary.json  oof.csv  tuned.json (tune-thresholds)
    fold0/ best.pt last.pt history.csv metrics.json oof.csv confusion_<head>.png curves.png
    fold-none/ best.pt last.pt history.csv metrics.json     (the final fit, --fold none: no oof.csv)
    exclude.csv relabel.csv                                   (copies, when the run was given them)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd

from maskcls.errors import MaskclsError, warn

FINAL = "none"  # --fold none: the final fit, every person trains, nothing validates (folder fold-none/)


def fold_dir(run_dir: str | Path, fold: int | str) -> Path:
    """run/fold0, run/fold1, ...; run/fold-none for the final fit."""
    return Path(run_dir) / (f"fold-{fold}" if fold == FINAL else f"fold{fold}")


class Run:
    """One run folder: where its files are, its config (the saved one over today's defaults, so keys
    added since read their defaults), and its out-of-fold rows."""

    def __init__(self, path: str | Path):
        self.dir = Path(path)
        if not (self.dir / "config.json").is_file():
            raise MaskclsError(f"{self.dir}: not a run directory (no config.json)")
        self._config = None

    @classmethod
    def of_checkpoint(cls, path: Path) -> Run | None:
        """The run of RUN/foldK/best.pt; None for a loose checkpoint."""
        run_dir = Path(path).parent.parent
        return (
            cls(run_dir) if Path(path).parent.name.startswith("fold") and (run_dir / "config.json").is_file() else None
        )

    @property
    def config(self):
        """The run's config: config.json (checked like any config: a corrupt file is one line) over the defaults."""
        if self._config is None:
            from maskcls.config import defaults, load_json, merge

            saved, base = load_json(self.dir / "config.json"), defaults(registries=False)
            # registries=False: what the run names (loss, augment, ...) is checked where it is built
            self._config = merge(base, {k: v for k, v in saved.items() if k in base}, str(self.dir / "config.json"),
                                 registries=False)  # fmt: skip
        return self._config

    @classmethod
    def create(cls, path: str | Path, cfg) -> Run:
        """A new run in the (new, empty) folder `path`: what it keeps of how it was made, config.json,
        label_map.json and copies of the hand-made files it trained with (exclude.csv, relabel.csv)."""
        from maskcls import heads, io

        path = Path(path)
        io.write_json(path / "label_map.json", heads.label_map(heads.task_heads(cfg.task, cfg.head), cfg.age_upper))
        for key in ("exclude", "relabel"):
            if cfg[key]:
                io.write_text(path / f"{key}.csv", Path(cfg[key]).read_text())
        io.write_json(path / "config.json", cfg)  # last: a folder with config.json is a run
        return cls(path)

    @staticmethod
    def fold_ids(cfg, folds: pd.DataFrame) -> list:
        """The folds cfg.fold trains: one number, every fold ("all"), or the final fit ("none")."""
        if cfg.fold == "all":
            return [int(k) for k in sorted(folds["fold"].unique())]
        return [FINAL] if cfg.fold == FINAL else [int(cfg.fold)]

    def resume_config(self, overrides: dict | None = None):
        """The config `--resume` continues with: the run's own, with the few settings the command line may
        change (settings.RESUME_KEYS); any other flag is refused, never silently dropped."""
        from maskcls.config import merge
        from maskcls.settings import RESUME_KEYS

        own = self.config  # first: a corrupt config.json is the error to report
        self.check_config_matches_checkpoint(RESUME_KEYS)
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        refused = [k for k in given if k not in RESUME_KEYS]
        if refused:
            allowed = ", ".join(f"--{k.replace('_', '-')}" for k in RESUME_KEYS)
            raise MaskclsError(
                f"--resume continues {self.dir} with its own config: --{refused[0].replace('_', '-')} cannot change "
                f"(with --resume only {allowed}); start a new run to change it"
            )
        cfg = merge(own, given, "command line")
        done = max((len(pd.read_csv(h)) for h in self.dir.glob("fold*/history.csv")), default=0)
        if cfg.epochs < done:
            raise MaskclsError(f"--epochs {cfg.epochs}: {self.dir} has already trained {done} epochs")
        return cfg

    def check_config_matches_checkpoint(self, free: tuple[str, ...] | list[str]) -> None:
        """config.json must say what the run's last.pt trained with: the checkpoint is the record, and a
        hand-edited config.json (another age_upper, lr, head_dropout ...) is one line naming the key."""
        from maskcls.config import load_json
        from maskcls.io import torch_load

        last = sorted(self.dir.glob("fold*/last.pt"))
        if not last:
            return
        saved = torch_load(last[0]).get("config", {})
        written = load_json(self.dir / "config.json")
        for key in written:
            if key in free or key not in saved:
                continue
            if json.dumps(written[key], sort_keys=True) != json.dumps(saved[key], sort_keys=True):
                raise MaskclsError(f"{self.dir / 'config.json'}: {key} is {written[key]!r}, but {last[0]} trained "
                                   f"with {saved[key]!r}: a run's config is not edited (start a new run instead)")

    @property
    def final(self) -> bool:
        return self.config.fold == FINAL

    def fold(self, k: int | str) -> Path:
        return fold_dir(self.dir, k)

    def folds(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("fold*") if p.is_dir())

    @property
    def oof_path(self) -> Path:
        return self.dir / "oof.csv"

    @property
    def tuned_path(self) -> Path:
        return self.dir / "tuned.json"

    def oof(self, required: tuple[str, ...] = ("path", "class")) -> pd.DataFrame:
        """The out-of-fold rows (probabilities checked), or one line saying why there are none."""
        from maskcls.heads import check_probs
        from maskcls.io import read_csv

        if not self.oof_path.is_file() and self.final:
            raise MaskclsError(f"{self.dir}: a final fit (--fold none) validates nothing, so it has no out-of-fold "
                               "rows; use the run that chose its recipe")  # fmt: skip
        oof = read_csv(self.oof_path, list(required), dtype={"person": str, "path": str})
        if oof.empty:
            raise MaskclsError(f"{self.oof_path}: no out-of-fold rows (a header only)")
        if not check_probs(oof, self.oof_path, key="path"):
            raise MaskclsError(f"{self.oof_path}: no probability columns (expected e.g. mask_0..mask_2)")
        check_oof_labels(oof, self.oof_path)
        return oof


def check_oof_labels(oof: pd.DataFrame, path: Path) -> None:
    """Each photo once; every label a class of its head; `class` the one its mask, gender and age make."""
    from maskcls import labels
    from maskcls.heads import check_labels

    twice = oof["path"].duplicated()
    if twice.any():
        i = int(twice.to_numpy().argmax())
        raise MaskclsError(f"{path}: row {i + 2}: photo {oof['path'].iloc[i]} appears more than once")
    check_labels(oof, path)
    if {"mask", "gender", "age", "class"} <= set(oof):
        made = labels.encode(oof["mask"].astype(int), oof["gender"].astype(int), oof["age"].astype(int))
        off = (oof["class"].astype(int) != made).to_numpy()
        if off.any():
            i = int(off.argmax())
            row = oof.iloc[i]
            raise MaskclsError(f"{path}: row {i + 2}: class {row['class']} contradicts its mask, gender and age "
                               f"({row['mask']}, {row['gender']}, {row['age']})")  # fmt: skip


def agree(configs: dict[str, dict], key: str = "age_upper", what: str = "age thresholds"):
    """The one value of `key` the runs (or checkpoints) share, or one line naming how they differ."""
    values = {str(name): cfg[key] for name, cfg in configs.items()}
    if len(set(values.values())) > 1:
        listed = ", ".join(f"{name}: {v}" for name, v in values.items())
        raise MaskclsError(f"the runs use different {what} ({listed}): use runs of one {key.replace('_', ' ')}")
    return next(iter(values.values()))


def make_dir(path: str | Path, flag: str = "--out") -> Path:
    """mkdir -p, or one line naming the flag and why not (a file there, a file above it, read-only)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise MaskclsError(f"{flag} {path}: is a file, not a folder") from None
    except NotADirectoryError:
        raise MaskclsError(f"{flag} {path}: a part of the path is a file, not a folder") from None
    except OSError as e:
        raise MaskclsError(f"{flag} {path}: cannot create the folder ({e.strerror or e})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise MaskclsError(f"{flag} {path}: folder is not writable")
    return path


def new_run_dir(out: str | Path, name: str) -> Path:
    out = make_dir(out)
    candidate, n = out / name, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = out / f"{name}-{n}"
        except OSError as e:
            raise MaskclsError(f"--out {out}: cannot create {candidate.name} ({e.strerror or e})") from None


def run_inputs(runs: list[Path]) -> dict[str, Path]:
    """Each run folder given (a checkpoint's run, or the loose checkpoint itself): inputs, never outputs."""
    out = {}
    for r in map(Path, runs):
        run = Run.of_checkpoint(r) if r.is_file() else None
        out[f"run {r}"] = run.dir if run is not None else r
    return out


def fold_checkpoints(run_dir: str | Path, which: str = "best.pt") -> list[Path]:
    """Every fold's checkpoint of a run directory (or the checkpoint file itself)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return [run_dir]
    if (run_dir / which).is_file():  # a single fold folder
        return [run_dir / which]
    found = sorted(run_dir.glob(f"fold*/{which}"))
    if not found:
        raise MaskclsError(f"{run_dir}: no fold*/{which} found (is this a maskcls run directory?)")
    return found


def read_oof(run_dir: str | Path, required: tuple[str, ...] = ("path", "class")) -> tuple[pd.DataFrame, dict]:
    """A run's out-of-fold rows and its config, or one line saying why there are none."""
    run = Run(run_dir)
    return run.oof(required), run.config


SCORE_HEADS = ("class", "mask", "gender", "age")


def run_summary(run_dir: Path) -> dict:
    """One row for `maskcls runs`: settings, mean best validation scores over the trained folds, time, date."""
    run = Run(run_dir)
    cfg = run.config
    metrics = []
    seconds = 0.0
    for folder in run.folds():
        if (folder / "metrics.json").is_file():
            metrics.append(json.loads((folder / "metrics.json").read_text())["metrics"])
        if (folder / "history.csv").is_file():
            seconds += float(pd.read_csv(folder / "history.csv")["seconds"].sum())
    head = cfg["task"] if cfg["task"] != "joint" else ("joint/flat18" if cfg.get("head") == "flat18" else "joint")
    row = {"run": str(run_dir), "task": head, "backbone": cfg["backbone"], "size": "x".join(map(str, cfg["img_size"])),
           "epochs": cfg["epochs"],
           "folds": "final" if cfg["fold"] == "none" else f"{len(metrics)}/{cfg['folds']}"}  # fmt: skip
    for h in SCORE_HEADS:
        values = [m[h]["f1"] for m in metrics if isinstance(m.get(h), dict)]
        row[f"{h}_f1"] = round(sum(values) / len(values), 4) if values else None
    maes = [m["age"]["mae"] for m in metrics if isinstance(m.get("age"), dict) and "mae" in m["age"]]
    row["age_mae"] = round(sum(maes) / len(maes), 2) if maes else None
    row["minutes"] = round(seconds / 60, 1)
    row["date"] = time.strftime("%Y-%m-%d %H:%M", time.localtime((run_dir / "config.json").stat().st_mtime))
    return row


def run_table(root: str | Path) -> pd.DataFrame:
    """Every run directory below root, with `best` marking the highest-scoring run of each task."""
    root = Path(root)
    if not root.is_dir():
        raise MaskclsError(f"{root}: directory not found")
    dirs = sorted({p.parent for p in root.rglob("config.json") if any(p.parent.glob("fold*"))})
    rows = []
    for d in dirs:  # one broken run (a corrupt metrics.json, say) is skipped with a line, not the whole table
        try:
            rows.append(run_summary(d))
        except (MaskclsError, OSError, ValueError, KeyError, TypeError, AttributeError, IndexError,
                pd.errors.ParserError) as e:  # fmt: skip
            reason = str(e).splitlines()[0][:120] if str(e) else ""
            warn(f"skipped {d}: unreadable run files ({type(e).__name__}: {reason})")
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    # what a run is judged by: the 18-class F1 where the run has it, else its own head's
    table["score"] = table["class_f1"].fillna(table[["mask_f1", "gender_f1", "age_f1"]].max(axis=1))
    table["best"] = table["score"].eq(table.groupby("task")["score"].transform("max")) & table["score"].notna()
    return table

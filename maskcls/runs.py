"""Run directories that number themselves: runs/age-resnet18, runs/age-resnet18-2, ...

Layout of a run (one experiment; every fold it trains is a sub-folder):
    config.json  label_map.json  folds.csv  summary.json  oof.csv
    fold0/ best.pt last.pt history.csv metrics.json oof.csv confusion_<head>.png
"""

from __future__ import annotations

from pathlib import Path

from maskcls.errors import MaskclsError


def new_run_dir(out: str | Path, name: str) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    candidate, n = out / name, 1
    while True:
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = out / f"{name}-{n}"


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

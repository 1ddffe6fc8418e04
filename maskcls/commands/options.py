"""Option types shared by several commands, so `--data` reads the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataDir = Annotated[
    Path,
    typer.Option("--data", help="Folder that holds train/ and eval/ in the contest layout.", file_okay=False),
]
AgeUpper = Annotated[
    int,
    typer.Option(
        "--age-upper",
        help="First age of the oldest group: <30 / 30..UPPER-1 / >=UPPER (teams use 58-60).",
        min=31,
        max=120,
    ),
]


def run_dirs(help: str):
    """The RUN... argument of the commands that read run directories (predict reads checkpoints too)."""
    return Annotated[list[Path], typer.Argument(help=help, exists=True, file_okay=False)]


Seed = Annotated[int, typer.Option("--seed", help="Fixes splits, sampling, augmentation and initialisation.")]


def parse_img_size(text: str | None, flag: str = "--img-size") -> list[int] | None:
    """'224' -> [224, 224]; '256 192', '256x192', '256,192' -> [256, 192] (H, W), each side in range."""
    if text is None:
        return None
    from maskcls.config import IMG_SIDE

    parts = text.replace("x", " ").replace(",", " ").split()
    try:
        size = [int(p) for p in parts]
    except ValueError:
        raise typer.BadParameter(f"expected one number or H W, got {text!r}", param_hint=flag) from None
    if len(size) not in (1, 2):
        raise typer.BadParameter(f"expected one number or H W, got {text!r}", param_hint=flag)
    if not all(IMG_SIDE[0] <= v <= IMG_SIDE[1] for v in size):
        raise typer.BadParameter(f"each side must be in {IMG_SIDE[0]}..{IMG_SIDE[1]}, got {text!r}", param_hint=flag)
    return size * 2 if len(size) == 1 else size


def parse_set(items: list[str]) -> dict:
    """--set KEY=VALUE pairs: VALUE read as JSON (numbers, true/false, null, lists), else as text."""
    import json

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
        except RecursionError:
            raise typer.BadParameter(f"{key.strip()}: value nested too deeply", param_hint="--set") from None
    return out

"""Option types shared by several commands, so `--data` reads the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from maskcls.settings import BY_KEY

DataDir = Annotated[
    Path,
    typer.Option("--data", help="Folder that holds train/ and eval/ in the contest layout.", file_okay=False),
]
_AGE = BY_KEY["age_upper"]
AgeUpper = Annotated[int, typer.Option("--age-upper", help=_AGE.help, min=_AGE.range[0], max=_AGE.range[1])]
FilesAgeUpper = Annotated[  # submit, pseudo-label: the prediction files say it
    int | None,
    typer.Option("--age-upper", help="The age threshold, for prediction files that do not record it (predict's do; "
                 f"a different value is refused). Default: the files', else {_AGE.default}.",
                 min=_AGE.range[0], max=_AGE.range[1]),
]  # fmt: skip


def run_dirs(help: str):
    """The RUN... argument of the commands that read run directories (predict reads checkpoints too)."""
    return Annotated[list[Path], typer.Argument(help=help, exists=True, file_okay=False)]


Seed = Annotated[int, typer.Option("--seed", help="Fixes splits, sampling, augmentation and initialisation.")]


def parse_img_size(text: str | None, flag: str = "--img-size") -> list[int] | None:
    """'224' -> [224, 224]; '256 192', '256x192', '256,192' -> [256, 192] (H, W), each side in range."""
    from maskcls.settings import parse_img_size as parse

    try:
        return None if text is None else parse(text)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint=flag) from None


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

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
Seed = Annotated[int, typer.Option("--seed", help="Fixes splits, sampling, augmentation and initialisation.")]

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def make_demo_command(
    out_dir: Annotated[Path, typer.Argument(help="Where to write train/, eval/ and eval_answers.csv.")],
    train_persons: Annotated[int, typer.Option(help="Persons in train/ (7 images each).", min=2)] = 60,
    eval_persons: Annotated[int, typer.Option(help="Persons in eval/ (7 images each).", min=1)] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the generated faces, labels and planted junk.")] = 0,
    force: Annotated[
        bool, typer.Option("--force", help="Replace train/, eval/ and eval_answers.csv of a folder that has them.")
    ] = False,
) -> None:
    """Generate a small demo data set in the exact contest layout (drawn faces, planted junk).

    Example: [bold]maskcls make-demo demo/ && maskcls eda --data demo/[/]
    """
    from maskcls.demo import make_demo

    out = make_demo(out_dir, train_persons=train_persons, eval_persons=eval_persons, seed=seed, force=force)
    Console().print(
        f"wrote {train_persons} train and {eval_persons} eval persons to {out} (answer key: {out / 'eval_answers.csv'})"
    )

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


class Format(str, Enum):
    onnx = "onnx"
    torchscript = "torchscript"


def export_command(
    runs: Annotated[
        list[Path], typer.Argument(help="Run directories (every fold*/best.pt) or checkpoints: one graph.", exists=True)
    ],
    out: Annotated[Path, typer.Option(help="The file to write (*.onnx, *.torchscript); FILE.json beside it.")],
    format: Annotated[Format, typer.Option("--format", help="onnx (ONNX Runtime, any language) or torchscript.")] = (
        Format.onnx
    ),
    tta: Annotated[bool, typer.Option("--tta", help="Average with the horizontally flipped image, in the graph.")] = (
        False
    ),
    tuned: Annotated[
        bool, typer.Option("--tuned/--no-tuned", help="Apply each run's tuned.json in the graph (as predict does).")
    ] = True,
) -> None:
    """Export runs (their folds, separate task models, a final fit) as one ONNX or TorchScript file.

    The file takes a batch of uint8 RGB face crops (batch, 3, H, W) at the runs' input size and returns
    each head's probabilities, averaged over every checkpoint as [bold]predict[/] averages them; FILE.json
    says the size, the heads and their classes, age_upper, how the training faces were cropped and which
    checkpoints (with SHA-256) went in. [bold]maskcls predict FILE[/] and [bold]maskcls.Predictor(FILE)[/] run it.

    Example: [bold]maskcls export runs/joint --format onnx --out joint.onnx[/]
    """
    from rich.console import Console

    from maskcls.post.export import export

    meta = export(runs, format.value, out, tuned=tuned, tta=tta)
    heads = ", ".join(o["name"] for o in meta["outputs"])
    h, w = meta["input"]["size"]
    Console().print(f"wrote {out} ({format.value}: uint8 (batch, 3, {h}, {w}) -> {heads}; "
                    f"{len(meta['sources'])} checkpoint(s){', hflip TTA' if tta else ''}) and {out}.json")  # fmt: skip

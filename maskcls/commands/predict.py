from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from maskcls.commands.options import DataDir


def predict_command(
    runs: Annotated[
        list[Path], typer.Argument(help="Run directories (every fold*/best.pt is used) or checkpoints.", exists=True)
    ],
    data: DataDir,
    out: Annotated[Path, typer.Option(help="Output CSV: ImageID and one probability column per class.")],
    tta: Annotated[bool, typer.Option("--tta", help="Average with the horizontally flipped image.")] = False,
    batch_size: Annotated[int, typer.Option(help="Images per batch.", min=1)] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    gpus: Annotated[
        int, typer.Option(help="Predict on N processes under torchrun, each a shard of the images.", min=1)
    ] = 1,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Decode-once image cache folder (default: a run's training cache; none for a loose .pt).",
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Predict eval/info.csv images; several runs or folds are averaged (soft vote).

    Example: [bold]maskcls predict runs/age-resnet18 --data crops/ --out preds/age.csv --tta[/]
    """
    from maskcls.post.predict import predict

    predict(runs, data, out, tta=tta, batch_size=batch_size, device=device, cache_dir=cache_dir)

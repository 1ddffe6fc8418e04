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
    tuned: Annotated[
        bool, typer.Option("--tuned/--no-tuned", help="Apply each run's tuned.json (maskcls tune-thresholds).")
    ] = True,
) -> None:
    """Predict eval/info.csv images; several runs or folds are averaged (soft vote).

    Example: [bold]maskcls predict runs/age-resnet18 --data crops/ --out preds/age.csv --tta[/]
    """
    from maskcls.post.predict import predict

    predict(runs, data, out, tta=tta, batch_size=batch_size, device=device, cache_dir=cache_dir, tuned=tuned)


def tune_thresholds_command(
    runs: Annotated[
        list[Path],
        typer.Argument(help="Run directories whose oof.csv tune together (e.g. a mask, a gender and an age run).",
                       exists=True, file_okay=False),  # fmt: skip
    ],
) -> None:
    """Choose age cut-offs (ordinal/regression age heads) and per-class biases on out-of-fold predictions.

    Maximises the out-of-fold 18-class macro-F1 (one head's when the runs lack the others) and
    writes RUN/tuned.json, which `predict` applies unless --no-tuned.

    Example: [bold]maskcls tune-thresholds runs/mask-r18 runs/gender-r18 runs/age-r18[/]
    """
    from rich.console import Console

    from maskcls.post.tune import tune, write_tuned

    result = tune(runs)
    console = Console()
    for run, heads in result["choices"].items():
        for head, c in heads.items():
            cut = f", cut-offs {c['cutoffs']}" if "cutoffs" in c else ""
            console.print(f"{run}: {head} biases {c['bias']}{cut}")
    console.print(f"out-of-fold macro-F1 ({result['scored_on']}, {result['images']} images): "
                  f"{result['oof_f1_before']:.4f} -> {result['oof_f1_after']:.4f}")  # fmt: skip
    for path in write_tuned(result):
        console.print(f"wrote {path}")

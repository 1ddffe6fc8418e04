from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from maskcls.commands.options import run_dirs


def predict_command(
    runs: Annotated[
        list[Path],
        typer.Argument(help="Run directories (every fold*/best.pt), checkpoints, or one exported file.", exists=True),
    ],
    data: Annotated[
        Path | None,
        typer.Option(help="Data folder whose eval/info.csv images are predicted (or use --images).", file_okay=False),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output CSV: ImageID and one probability column per class; '-' prints a table.")
    ] = None,
    images: Annotated[
        str | None,
        typer.Option(help="Any photos instead of eval/: a folder (searched recursively) or a glob like 'new/*.jpg'."),
    ] = None,
    crop: Annotated[
        bool, typer.Option("--crop", help="With --images: crop each photo first, as the run's training data was.")
    ] = False,
    tta: Annotated[bool, typer.Option("--tta", help="Average with the horizontally flipped image.")] = False,
    batch_size: Annotated[int, typer.Option(help="Images per batch.", min=1)] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    gpus: Annotated[
        int, typer.Option(help="Predict on N processes under torchrun, each a shard of the images.", min=1)
    ] = 1,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Decode-once image cache folder to fill and reuse (default: none; predict writes only --out).",
            file_okay=False,
        ),
    ] = None,
    tuned: Annotated[
        bool, typer.Option("--tuned/--no-tuned", help="Apply each run's tuned.json (maskcls tune-thresholds).")
    ] = True,
) -> None:
    """Predict eval/info.csv images (or any photos, --images); several runs or folds are averaged (soft vote).

    Example: [bold]maskcls predict runs/age-resnet18 --data crops/ --out preds/age.csv --tta[/]
    Any photos: [bold]maskcls predict runs/joint --images new_photos/ --crop --out -[/]
    """
    from maskcls.post.predict import predict

    if (data is None) == (images is None):
        raise typer.BadParameter("give --data (its eval/ images) or --images, one of them", param_hint="--data")
    if crop and images is None:
        raise typer.BadParameter("--crop goes with --images (eval/ of a crop folder is cropped already)",
                                 param_hint="--crop")  # fmt: skip
    if out is None:
        raise typer.BadParameter("where to write: --out FILE.csv, or --out - to print a table", param_hint="--out")
    to_screen = str(out) == "-"
    table = predict(runs, data, None if to_screen else out, tta=tta, batch_size=batch_size, device=device,
                    cache_dir=cache_dir, tuned=tuned, images=images, crop=crop)  # fmt: skip
    if to_screen:
        print_table(table)


def print_table(table) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{len(table)} photos")
    pred = [c for c in table.columns if c.startswith("pred_")] or [c for c in table.columns if c != "ImageID"]
    for c in ["ImageID", *pred]:
        t.add_column(c.removeprefix("pred_"))
    for row in table[["ImageID", *pred]].itertuples(index=False):
        t.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    Console().print(t)


def tune_thresholds_command(
    runs: run_dirs("Run directories whose oof.csv tune together (e.g. a mask, a gender and an age run)."),
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

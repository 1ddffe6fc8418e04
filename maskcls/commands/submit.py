"""ensemble, submit and pseudo-label: from prediction files to the leaderboard CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from maskcls.commands.options import DataDir, FilesAgeUpper

PredFile = Annotated[
    Path | None, typer.Option(help="Prediction CSV from `maskcls predict` or `maskcls ensemble`.", dir_okay=False)
]


def _sources(mask, gender, age, joint) -> dict[str, Path]:
    return {k: v for k, v in {"mask": mask, "gender": gender, "age": age, "joint": joint}.items() if v is not None}


def ensemble_command(
    preds: Annotated[
        list[Path], typer.Argument(help="Prediction CSVs of the same task(s) and images.", dir_okay=False)
    ],
    out: Annotated[Path, typer.Option(help="Where to write the combined prediction CSV.")],
    weights: Annotated[str | None, typer.Option(help="Comma-separated weights, one per file (default equal).")] = None,
    method: Annotated[str, typer.Option(help="mean (arithmetic soft vote) or geometric.")] = "mean",
) -> None:
    """Soft-vote prediction files: folds, backbones, TTA variants.

    Example: [bold]maskcls ensemble preds/age_r18.csv preds/age_effb0.csv --weights 1,2 --out preds/age.csv[/]
    """
    from rich.console import Console

    from maskcls.errors import MaskclsError
    from maskcls.post.ensemble import write_ensemble

    try:
        w = [float(x) for x in weights.split(",")] if weights else None
    except ValueError:
        raise MaskclsError(f"--weights must be comma-separated numbers (got {weights!r})") from None
    df = write_ensemble(preds, out, w, method)
    Console().print(f"wrote {out}: {len(df)} images from {len(preds)} files ({method})")


def submit_command(
    data: DataDir,
    mask: PredFile = None,
    gender: PredFile = None,
    age: PredFile = None,
    joint: PredFile = None,
    out: Annotated[Path, typer.Option(help="Folder for the submission CSV (named by time and input hash).")] = Path(
        "submissions"
    ),
    answers: Annotated[
        Path | None, typer.Option(help="Answer key (ImageID,ans) to print a local macro-F1.", dir_okay=False)
    ] = None,
    score_json: Annotated[Path | None, typer.Option(help="With --answers: also write the scores here as JSON.")] = None,
    age_upper: FilesAgeUpper = None,
) -> None:
    """Write the leaderboard CSV: eval/info.csv order, ans = mask*6 + gender*3 + age.

    Example: [bold]maskcls submit --mask m.csv --gender g.csv --age a.csv --data crops/ --out submissions/[/]
    """
    from maskcls import io
    from maskcls.post.submit import submit

    path, metrics = submit(_sources(mask, gender, age, joint), data, out, answers, age_upper=age_upper)
    if score_json is not None and metrics is not None:
        io.write_json(score_json, {"submission": str(path), **metrics})


def pseudo_label_command(
    data: DataDir,
    out: Annotated[Path, typer.Option(help="Pseudo-label CSV, for train commands' --extra.")],
    mask: PredFile = None,
    gender: PredFile = None,
    age: PredFile = None,
    joint: PredFile = None,
    threshold: Annotated[
        float, typer.Option(help="Keep images whose every task's top probability is at least this.")
    ] = 0.9,
    age_upper: FilesAgeUpper = None,
) -> None:
    """Label confidently predicted eval images for another round of training (train only, never validation).

    Example: [bold]maskcls pseudo-label --joint j.csv --data crops/ --threshold 0.9 --out pseudo.csv[/]
    """
    from rich.console import Console

    from maskcls import io
    from maskcls.post.pseudo import pseudo_label, write_pseudo

    sources = _sources(mask, gender, age, joint)
    io.check_apart(out, "--out", {"--data": data, **{f"--{task}": p for task, p in sources.items()}})
    df = pseudo_label(sources, data, threshold, age_upper)
    write_pseudo(df, out)
    Console().print(f"wrote {out}: {len(df)} confident images (threshold {threshold})")


def score_command(
    run: Annotated[
        Path,
        typer.Argument(
            help="A run directory (its oof.csv: the out-of-fold predictions).", exists=True, file_okay=False
        ),
    ],  # fmt: skip
) -> None:
    """Score a run's out-of-fold predictions like a submission: per-class F1 table and bar chart.

    Example: [bold]maskcls score runs/joint-resnet18[/]  (writes RUN/score-f1.png)
    """
    from maskcls.post.submit import score_run

    score_run(run)

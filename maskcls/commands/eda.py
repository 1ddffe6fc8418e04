from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from maskcls.commands.options import AgeUpper, DataDir
from maskcls.labels import DEFAULT_AGE_UPPER


def eda_command(
    data: DataDir,
    plots: Annotated[
        Path | None,
        typer.Option(help="Also write age_hist.png, class_bars.png, samples.png here.", file_okay=False),
    ] = None,
    age_upper: AgeUpper = DEFAULT_AGE_UPPER,
) -> None:
    """Summarise a data set: persons, images, label mix, ages, image sizes, junk skipped.

    Example: [bold]maskcls eda --data ../shared/data/maskproxy-dev --plots out/[/]
    """
    from maskcls.data import scan_eval, scan_train
    from maskcls.eda import plots as write_plots
    from maskcls.eda import report

    console = Console()
    index = scan_train(data, age_upper=age_upper)
    eval_index = scan_eval(data) if (data / "eval").exists() else None
    report(index, eval_index, console, age_upper)
    if plots is not None:
        for path in write_plots(index, plots, age_upper):
            console.print(f"wrote {path}")

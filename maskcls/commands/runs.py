"""maskcls runs: every run below a folder in one table, the best per task marked."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

COLUMNS = ["run", "task", "backbone", "size", "epochs", "folds", "class_f1", "mask_f1", "gender_f1", "age_f1",
           "age_mae", "minutes", "date"]  # fmt: skip


def runs_command(
    root: Annotated[Path, typer.Argument(help="Folder to search for run directories (any depth).")] = Path("runs"),
    sort: Annotated[
        str, typer.Option(help=f"Column to sort by (descending; date and run ascending): {', '.join(COLUMNS)}.")
    ] = "score",
    csv: Annotated[
        Path | None, typer.Option(help="Also write the table as CSV (for spreadsheets); '-' prints it.")
    ] = None,
) -> None:
    """Compare runs: settings, best validation macro-F1 per head and for the 18 classes, MAE, time, date.

    Scores are the means over the folds each run trained; the best run of each task is starred.
    Example: [bold]maskcls runs runs/ --sort age_f1 --csv runs.csv[/]
    """
    import sys

    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from maskcls import io
    from maskcls.runs import run_table

    table = run_table(root)
    console = Console(width=None if sys.stdout.isatty() else 200)  # a log or a pipe gets the whole table
    if table.empty:
        console.print(f"no run directories below {root}")
        return
    if sort not in [*COLUMNS, "score"]:
        raise typer.BadParameter(f"must be one of {', '.join(COLUMNS)}", param_hint="--sort")
    table = table.sort_values(sort, ascending=sort in ("run", "date", "task", "backbone"), na_position="last")
    if csv is not None:
        if str(csv) == "-":
            sys.stdout.write(table[[*COLUMNS, "best"]].to_csv(index=False))
            return
        io.check_apart(csv, "--csv", {f"run {r}": r for r in table["run"]})  # a run's own oof.csv, say
        io.write_csv(csv, table[[*COLUMNS, "best"]])
    t = Table(title=f"{len(table)} runs below {root} (* best of its task)")
    for c in COLUMNS:
        t.add_column(c.replace("_f1", " F1").replace("age_mae", "age MAE"), justify="left" if c == "run" else "right")
    for _, r in table.iterrows():
        cells = ["" if pd.isna(r[c]) else (f"{r[c]:.4f}" if c.endswith("_f1") else str(r[c])) for c in COLUMNS]
        cells[0] = ("* " if r["best"] else "  ") + str(Path(r["run"]).relative_to(root))
        t.add_row(*cells)
    console.print(t)

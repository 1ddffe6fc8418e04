"""maskcls audit: rank the training labels that look wrong, from out-of-fold predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from maskcls.commands.options import run_dirs


def audit_command(
    runs: run_dirs("Run directories trained with --fold all (their oof.csv covers every person); several average."),
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for suspects.csv and suspects.png (default: RUN/audit of the first run).", file_okay=False
        ),  # fmt: skip
    ] = None,
    top: Annotated[int, typer.Option(help="How many suspects suspects.png shows, e.g. 24.", min=1, max=500)] = 24,
    heads: Annotated[
        str | None, typer.Option(help="Heads to audit, e.g. gender,age (default: every head the runs have).")
    ] = None,
) -> None:
    """Rank the training labels that look wrong: persons (gender, age; seven photos as one unit) and images (mask).

    By out-of-fold loss and entropy; writes suspects.csv and suspects.png (the top suspects).
    Check the top by eye, then train with --relabel FIXED.csv (person,gender,age) or --exclude its top rows.

    Example: [bold]maskcls audit runs/joint-resnet18 && head -n 31 runs/joint-resnet18/audit/suspects.csv > drop.csv[/]
    """
    from maskcls.heads import FACTORS
    from maskcls.post.audit import audit, write_audit

    chosen = None
    if heads is not None:
        chosen = tuple(h.strip() for h in heads.split(",") if h.strip())
        unknown = [h for h in chosen if h not in FACTORS]
        if unknown or not chosen:
            raise typer.BadParameter(f"expected heads among {', '.join(FACTORS)}, got {heads!r}", param_hint="--heads")
    suspects, facts = audit(runs, chosen)
    write_audit(suspects, facts, out if out is not None else runs[0] / "audit", top)

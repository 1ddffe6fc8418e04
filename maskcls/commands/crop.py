from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from maskcls.commands.options import DataDir


def crop_command(
    data: DataDir,
    out: Annotated[Path, typer.Option(help="CROPDIR: same layout as --data, faces only; use it as --data later.")],
    detectors: Annotated[
        str,
        typer.Option(
            help="Detector chain, first hit wins: retinaface, mtcnn, haar, center. Default: MTCNN, then Haar "
            "cascades, then the portrait box (measured: README, 'Face crops').",
        ),
    ] = "mtcnn,haar,center",
    size: Annotated[str, typer.Option(help="Output size H W, e.g. '320 240' or '320x240'.")] = "320 240",
    margin: Annotated[
        float, typer.Option(help="Margin around the face box, as a share of its size per side.", min=0.0, max=2.0)
    ] = 0.2,
    align: Annotated[
        bool,
        typer.Option(
            "--align/--no-align",
            help="Rotate so the eyes are level and frame the face by eye distance (faces with landmarks: mtcnn).",
        ),
    ] = False,
    down_shift: Annotated[
        float,
        typer.Option(
            help="Move the box down by this share of the face height (keeps the chin and a mask pulled down "
            "to it), e.g. 0.2.",
            min=-0.5,
            max=1.0,
        ),
    ] = 0.1,
    retinaface_weights: Annotated[
        Path | None,
        typer.Option(
            help="RetinaFace weights file; else the release's file in torch hub's folder or a weight package, "
            "else the release URL (online).",
            dir_okay=False,
            exists=True,
        ),
    ] = None,
    retinaface_threshold: Annotated[
        float, typer.Option(help="RetinaFace confidence threshold.", min=0.0, max=1.0)
    ] = 0.7,
    device: Annotated[str, typer.Option(help="Device for RetinaFace/MTCNN: auto, cpu or cuda.")] = "auto",
    workers: Annotated[
        int, typer.Option(help="Threads for reading, Haar detection and writing (-1 = all cores).")
    ] = -1,
    batch_size: Annotated[
        int, typer.Option(help="Images per detection batch (RetinaFace runs them as one batch).", min=1)
    ] = 16,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any image could not be read.")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Redo every crop, also when --out holds crops of other settings.")
    ] = False,
) -> None:
    """Crop the face of every train and eval image (resumable: a second run skips finished images).

    Example: [bold]maskcls crop --data ../shared/data/maskproxy-dev --out crops/[/]
    """
    import os

    from maskcls.commands.options import parse_img_size
    from maskcls.crop import CropSettings, run_crop
    from maskcls.runtime import resolve_device

    h, w = parse_img_size(size, "--size")
    dev = str(resolve_device(device))
    settings = CropSettings(size=(h, w), margin=margin, down_shift=down_shift, align=align)
    result = run_crop(
        data, out, [d.strip() for d in detectors.split(",") if d.strip()], settings,
        workers=(os.cpu_count() or 1) if workers < 0 else workers, batch_size=batch_size, strict=strict, force=force,
        weights=None if retinaface_weights is None else str(retinaface_weights), device=dev,
        threshold=retinaface_threshold,
    )  # fmt: skip
    if strict and result["failed"]:
        raise typer.Exit(code=1)

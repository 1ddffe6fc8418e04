from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from maskcls import io
from maskcls.commands.options import DataDir


def cache_command(
    data: DataDir,
    size: Annotated[str, typer.Option(help="Training size H W, e.g. '192 144' (must match --img-size).")],
    cache_dir: Annotated[Path, typer.Option(help="Cache folder; train uses OUT/cache by default (runs/cache).")] = Path(
        "runs/cache"
    ),
) -> None:
    """Decode and resize every train and eval image once, into a memory-mapped cache on disk.

    Training does this itself on first use; run it ahead to keep the first epoch fast.
    Example: [bold]maskcls cache --data crops/ --size 192 144[/]
    """
    from maskcls.commands.options import parse_img_size
    from maskcls.data import scan_eval, scan_train
    from maskcls.data.cache import cached_source

    console = Console()
    h, w = parse_img_size(size, "--size")
    io.check_apart(cache_dir, "--cache-dir", {"--data": data})
    paths = scan_train(data).table["path"].tolist()
    if (data / "eval").exists():
        paths += scan_eval(data).table["path"].tolist()
    cached_source(cache_dir, (h, w), paths, console)
    console.print(f"cached {len(paths)} images at {h}x{w} in {cache_dir / f'{h}x{w}'}")

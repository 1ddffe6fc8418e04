"""train-mask, train-gender, train-age, train-joint: one command body, four task presets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from maskcls.commands.options import DataDir

MODEL, DATA, OPTIM, RUN = "Model", "Data and sampling", "Optimisation", "Run"


def parse_img_size(text: str | None, flag: str = "--img-size") -> list[int] | None:
    """'224' -> [224, 224]; '256 192', '256x192', '256,192' -> [256, 192] (H, W), each side in range."""
    if text is None:
        return None
    from maskcls.config import IMG_SIDE

    parts = text.replace("x", " ").replace(",", " ").split()
    try:
        size = [int(p) for p in parts]
    except ValueError:
        raise typer.BadParameter(f"expected one number or H W, got {text!r}", param_hint=flag) from None
    if len(size) not in (1, 2):
        raise typer.BadParameter(f"expected one number or H W, got {text!r}", param_hint=flag)
    if not all(IMG_SIDE[0] <= v <= IMG_SIDE[1] for v in size):
        raise typer.BadParameter(f"each side must be in {IMG_SIDE[0]}..{IMG_SIDE[1]}, got {text!r}", param_hint=flag)
    return size * 2 if len(size) == 1 else size


def parse_count_or_all(text: str | None, flag: str) -> int | str | None:
    if text is None or text == "all":
        return text
    if not text.isdigit():
        raise typer.BadParameter(f"expected a number or 'all', got {text!r}", param_hint=flag)
    return int(text)


def make_train_command(task: str):
    def command(
        data: DataDir = None,
        backbone: Annotated[
            str | None,
            typer.Option(help="timm model name, e.g. resnet18, efficientnet_b4, resnet152.", rich_help_panel=MODEL),
        ] = None,
        pretrained: Annotated[
            bool | None,
            typer.Option(
                "--pretrained/--no-pretrained",
                help="Start from timm's ImageNet weights (downloaded through its hub).",
                rich_help_panel=MODEL,
            ),
        ] = None,
        weights: Annotated[
            Path | None,
            typer.Option(
                help="Local weights file (timm state dict or a maskcls checkpoint); works offline.",
                rich_help_panel=MODEL,
            ),
        ] = None,
        head: Annotated[
            str | None,
            typer.Option(
                help="train-joint only: 'multi' (3 heads) or 'flat18' (one 18-way head).", rich_help_panel=MODEL
            ),
        ] = None,
        img_size: Annotated[
            str | None, typer.Option(help="Input size: one number or H W ('256 192', '256x192').", rich_help_panel=DATA)
        ] = None,
        augment: Annotated[
            str | None, typer.Option(help="Augmentation preset: none, light, medium, heavy.", rich_help_panel=DATA)
        ] = None,
        oversample: Annotated[
            float | None,
            typer.Option(help="Class-balanced oversampling: 0 natural mix .. 1 fully balanced.", rich_help_panel=DATA),
        ] = None,
        age_upper: Annotated[
            int | None, typer.Option(help="Oldest age group starts here (58, 59 or 60).", rich_help_panel=DATA)
        ] = None,
        extra: Annotated[
            Path | None,
            typer.Option(
                help="Pseudo-label CSV from `maskcls pseudo-label`: trains, never validates.", rich_help_panel=DATA
            ),
        ] = None,
        mixup: Annotated[float | None, typer.Option(help="MixUp alpha (0 = off).", rich_help_panel=DATA)] = None,
        cutmix: Annotated[float | None, typer.Option(help="CutMix alpha (0 = off).", rich_help_panel=DATA)] = None,
        epochs: Annotated[int | None, typer.Option(help="Epochs.", rich_help_panel=OPTIM)] = None,
        batch_size: Annotated[int | None, typer.Option(help="Batch size.", rich_help_panel=OPTIM)] = None,
        lr: Annotated[float | None, typer.Option(help="Peak learning rate.", rich_help_panel=OPTIM)] = None,
        optimizer: Annotated[str | None, typer.Option(help="adam, adamw or sgd.", rich_help_panel=OPTIM)] = None,
        scheduler: Annotated[
            str | None,
            typer.Option(help="cosine (with warm-up), step, exponential (0.95^epoch), none.", rich_help_panel=OPTIM),
        ] = None,
        weight_decay: Annotated[float | None, typer.Option(help="Weight decay.", rich_help_panel=OPTIM)] = None,
        loss: Annotated[
            str | None,
            typer.Option(
                help="ce, smooth (label smoothing), neighbor (age: adjacent groups only), focal, f1 (F1 + CE).",
                rich_help_panel=OPTIM,
            ),
        ] = None,
        label_smoothing: Annotated[
            float | None, typer.Option(help="Smoothing epsilon for 'smooth' and 'neighbor'.", rich_help_panel=OPTIM)
        ] = None,
        accum_steps: Annotated[
            int | None, typer.Option(help="Gradient accumulation steps.", rich_help_panel=OPTIM)
        ] = None,
        patience: Annotated[
            int | None,
            typer.Option(
                help="Early stopping after this many epochs without a better macro-F1 (0 = off).", rich_help_panel=OPTIM
            ),
        ] = None,
        amp: Annotated[
            bool | None, typer.Option("--amp/--no-amp", help="Mixed precision (CUDA only).", rich_help_panel=OPTIM)
        ] = None,
        sync_bn: Annotated[
            bool | None,
            typer.Option(
                "--sync-bn/--no-sync-bn",
                help="Under torchrun: SyncBatchNorm over the global batch.",
                rich_help_panel=OPTIM,
            ),
        ] = None,
        gpus: Annotated[
            int,
            typer.Option(
                help="Train with DDP on N processes (relaunches itself under torchrun).", min=1, rich_help_panel=RUN
            ),
        ] = 1,
        fold: Annotated[
            str | None,
            typer.Option(help="Train fold K (validation = the persons of fold K), or 'all'.", rich_help_panel=RUN),
        ] = None,
        folds: Annotated[
            str | None,
            typer.Option(
                help="Number of folds N, or 'all' to train every fold; both: --folds 3 --fold all.", rich_help_panel=RUN
            ),
        ] = None,
        seed: Annotated[
            int | None,
            typer.Option(help="Fixes splits, sampling, augmentation and initialisation.", rich_help_panel=RUN),
        ] = None,
        out: Annotated[
            Path | None, typer.Option(help="Parent folder of run directories (auto-numbered).", rich_help_panel=RUN)
        ] = None,
        name: Annotated[str | None, typer.Option(help="Run name (default TASK-BACKBONE).", rich_help_panel=RUN)] = None,
        resume: Annotated[
            Path | None,
            typer.Option(
                help="Continue a run directory after its last completed epoch.",
                exists=True,
                file_okay=False,
                rich_help_panel=RUN,
            ),
        ] = None,
        config: Annotated[
            Path | None,
            typer.Option(
                help="JSON file of config keys; overrides args.json and the task preset.", rich_help_panel=RUN
            ),
        ] = None,
        workers: Annotated[
            int | None, typer.Option(help="DataLoader workers (-1 = automatic).", rich_help_panel=RUN)
        ] = None,
        device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or mps.", rich_help_panel=RUN)] = None,
        cache: Annotated[
            bool | None,
            typer.Option(
                "--cache/--no-cache", help="Decode each image once into a memory-mapped cache.", rich_help_panel=RUN
            ),
        ] = None,
        cache_dir: Annotated[
            Path | None, typer.Option(help="Cache folder (default: OUT/cache, shared by runs).", rich_help_panel=RUN)
        ] = None,
        wandb: Annotated[
            bool,
            typer.Option("--wandb", help="Log to Weights & Biases (offline without an API key).", rich_help_panel=RUN),
        ] = False,
    ) -> None:
        from maskcls import config as config_mod
        from maskcls.engine.trainer import train

        flags = dict(
            data=None if data is None else str(data), backbone=backbone, pretrained=pretrained,
            weights=None if weights is None else str(weights), head=head, img_size=parse_img_size(img_size),
            augment=augment, oversample=oversample, age_upper=age_upper, extra=None if extra is None else str(extra),
            mixup=mixup, cutmix=cutmix, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
            scheduler=scheduler, weight_decay=weight_decay, loss=loss, label_smoothing=label_smoothing,
            accum_steps=accum_steps, patience=patience, amp=amp, sync_bn=sync_bn, seed=seed,
            out=None if out is None else str(out), name=name, workers=workers, device=device, wandb=wandb or None,
            cache=cache, cache_dir=None if cache_dir is None else str(cache_dir),
        )  # fmt: skip
        flags["fold"] = parse_count_or_all(fold, "--fold")
        n_folds = parse_count_or_all(folds, "--folds")
        if n_folds == "all":
            flags["fold"] = "all"
        elif n_folds is not None:
            flags["folds"] = n_folds
        if resume is not None:
            train(None, resume=resume)
            return
        train(config_mod.resolve(task, config, flags))

    command.__doc__ = (
        f"Train the {task} model on person-held-out folds; best checkpoint by validation macro-F1.\n\n"
        f"Defaults: args.json < configs/{task}.json < --config FILE < flags. Example:\n\n"
        f"[bold]maskcls train-{task} --data crops/ --backbone resnet18 --epochs 10 --folds all[/]"
    )
    return command

"""train-mask, train-gender, train-age, train-joint: one command body, four task presets."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated

import typer

from maskcls.commands.options import parse_img_size, parse_set

MODEL, DATA, OPTIM, RUN = "Model", "Data and sampling", "Optimisation", "Run"


def parse_count_or_all(text: str | None, flag: str, words: tuple[str, ...] = ("all",)) -> int | str | None:
    if text is None or text in words:
        return text
    if not text.isdigit():
        raise typer.BadParameter(f"expected a number or {' or '.join(map(repr, words))}, got {text!r}",
                                 param_hint=flag)  # fmt: skip
    return int(text)


def make_train_command(task: str):
    def command(
        data: Annotated[
            Path | None,
            typer.Option(
                help="Folder that holds train/ and eval/ in the contest layout. Required (not with --resume).",
                file_okay=False,
            ),  # fmt: skip
        ] = None,
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
                help="train-joint: 'multi' (3 heads) or 'flat18' (one 18-way head); train-age: the age head's "
                "kind, as --age-head.",
                rich_help_panel=MODEL,
            ),
        ] = None,
        age_head: Annotated[
            str | None,
            typer.Option(
                help="Age head: classify (3 groups), ordinal (CORN over ages 11..90) or regression (years, "
                "Huber loss); all give the 3 group probabilities, ordinal/regression also the MAE.",
                rich_help_panel=MODEL,
            ),
        ] = None,
        age_gate: Annotated[
            bool | None,
            typer.Option(
                "--age-gate/--no-age-gate",
                help="train-joint: condition the age head on the gender head's embedding.",
                rich_help_panel=MODEL,
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
        external: Annotated[
            Path | None,
            typer.Option(
                help="Face photos of known age and gender (a UTKFace-named folder or a CSV path,age,gender): "
                "train the age and gender heads, never validate.",
                rich_help_panel=DATA,
            ),
        ] = None,
        drop_ages: Annotated[
            str | None,
            typer.Option(
                help="Ages (in years) that do not train, e.g. 27-29,57-59 (noisy labels near the cut-offs); "
                "they still validate.",
                rich_help_panel=DATA,
            ),
        ] = None,
        exclude: Annotated[
            Path | None,
            typer.Option(
                help="CSV person[,stem or path] of images (no stem: whole persons) that do not train, e.g. the "
                "top of `maskcls audit`'s suspects.csv; they still validate.",
                rich_help_panel=DATA,
            ),
        ] = None,
        relabel: Annotated[
            Path | None,
            typer.Option(
                help="CSV person,gender,age of hand-checked labels (blank = keep); used for training and validation.",
                rich_help_panel=DATA,
            ),
        ] = None,
        mixup: Annotated[float | None, typer.Option(help="MixUp alpha (0 = off).", rich_help_panel=DATA)] = None,
        cutmix: Annotated[
            float | None, typer.Option(help="CutMix alpha, e.g. 1.0 (0 = off).", rich_help_panel=DATA)
        ] = None,
        cutmix_mode: Annotated[
            str | None,
            typer.Option(
                help="box (a random box), halves (the partner's left or right half, as the contest's top "
                "entries) or halves-tb (also top/bottom).",
                rich_help_panel=DATA,
            ),
        ] = None,
        cutmix_partner: Annotated[
            str | None,
            typer.Option(
                help="any (a random image of the batch) or rare (one of the batch's rarest age group, e.g. >=60).",
                rich_help_panel=DATA,
            ),
        ] = None,
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
        ema: Annotated[
            float | None,
            typer.Option(
                help="EMA decay of the weights, e.g. 0.999 (0 = off); the better of EMA and raw weights is kept.",
                rich_help_panel=OPTIM,
            ),
        ] = None,
        clip_grad: Annotated[
            float | None,
            typer.Option(help="Clip the gradient norm at this value, e.g. 1.0 (0 = off).", rich_help_panel=OPTIM),
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
            typer.Option(
                help="Which fold to train (validation = its persons), e.g. 0; 'all' for every fold; 'none' for the "
                "final fit on every person (no validation; the weights of the last epoch).",
                rich_help_panel=RUN,
            ),  # fmt: skip
        ] = None,
        folds: Annotated[
            str | None,
            typer.Option(
                help="Number of folds K the persons are split into, e.g. 5 (--fold all trains them all).",
                rich_help_panel=RUN,
            ),  # fmt: skip
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
        set_: Annotated[
            list[str] | None,
            typer.Option(
                "--set",
                help="Any config key without a flag of its own: --set KEY=VALUE (repeatable; VALUE as JSON, "
                "else text), e.g. --set decay_norm_bias=false.",
                rich_help_panel=RUN,
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

        given = {k: v for k, v in locals().items() if k in inspect.signature(command).parameters}
        for key, tasks in ONLY_FOR.items():
            if given[key] not in (None, False) and task not in tasks:
                where = ", ".join(f"train-{t}" for t in tasks)
                raise typer.BadParameter(f"applies to {where} only", param_hint=f"--{key.replace('_', '-')}")
        flags = {k: str(v) if isinstance(v, Path) else v for k, v in given.items() if k in config_mod.defaults()}
        flags.update(
            img_size=parse_img_size(img_size),
            wandb=wandb or None,
            fold=parse_count_or_all(fold, "--fold", ("all", "none")),
        )
        if folds == "all":  # one spelling for "every fold": --fold all (--folds is how many there are)
            raise typer.BadParameter("is how many folds; to train every fold use --fold all", param_hint="--folds")
        flags["folds"] = parse_count_or_all(folds, "--folds")
        if task == "age" and head is not None:  # train-age --head ordinal: the age head's kind
            if age_head is not None:
                raise typer.BadParameter("give the age head's kind once: --head or --age-head", param_hint="--head")
            kinds = config_mod.choices("age_head")
            if head not in kinds:
                raise typer.BadParameter(f"train-age's head is one of {', '.join(kinds)} (got {head!r})",
                                         param_hint="--head")  # fmt: skip
            flags["age_head"], flags["head"] = head, None
        sets = parse_set(set_ or [])
        if resume is not None:
            if config is not None:
                raise typer.BadParameter("--resume continues a run with its own config", param_hint="--config")
            train(None, resume=resume, overrides={**flags, **sets}, task=task)
            return
        train(config_mod.resolve(task, config, flags, sets))

    _document(command, task)
    command.__doc__ = (
        f"Train the {task} model on person-held-out folds; best checkpoint by validation macro-F1.\n\n"
        f"Defaults: args.json < configs/{task}.json < --config FILE < --set KEY=VALUE < flags. Example:\n\n"
        f"[bold]maskcls train-{task} --data crops/ --backbone resnet18 --epochs 10 --folds 5 --fold all[/]"
    )
    return command


# Options that apply to some train commands only: hidden on the others' --help.
ONLY_FOR = {"head": ("joint", "age"), "age_head": ("joint", "age"), "age_gate": ("joint",),
            "external": ("joint", "gender", "age"), "drop_ages": ("joint", "age")}  # fmt: skip


def _document(command, task: str) -> None:
    """Append each flag's resolved default (args.json < configs/<task>.json) to its help and hide
    the flags that do not apply to this task (every command has its own option objects)."""
    import json
    import typing

    from maskcls import config as config_mod

    try:
        resolved = config_mod.resolve(task)
    except Exception:  # a broken own args.json: the command itself will say so, one line
        return
    hints = typing.get_type_hints(command, include_extras=True)
    command.__annotations__ = hints  # evaluated once, so Typer reads the objects changed below
    for name, hint in hints.items():
        info = next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, typer.models.OptionInfo)), None)
        if info is None:
            continue
        if name in ONLY_FOR and task not in ONLY_FOR[name]:
            info.hidden = True
        if name in resolved and name not in ("task", "data"):
            value = resolved[name]
            shown = " ".join(map(str, value)) if name == "img_size" else json.dumps(value)
            info.help = f"{info.help} \\[default: {shown}]"  # escaped: not rich markup

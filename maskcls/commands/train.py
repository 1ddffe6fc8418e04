"""train-mask, train-gender, train-age, train-joint: one command body, four task presets.

The flags are the settings' records (maskcls/settings.py): each record with a panel is a flag of
that name, with its help, its panel, the default this task resolves to, and hidden on the train
commands it does not apply to. Four options are the command's own: --gpus, --resume, --config, --set.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated

import typer

from maskcls import settings
from maskcls.commands.options import parse_set

OWN = {  # the options that are not settings: how to run, not what to train
    "gpus": (Annotated[int, typer.Option(help="Train with DDP on N processes (relaunches itself under torchrun).",
                                         min=1, rich_help_panel=settings.RUN)], 1),  # fmt: skip
    "resume": (Annotated[Path | None, typer.Option(
        help="Continue a run directory after its last completed epoch.", exists=True, file_okay=False,
        rich_help_panel=settings.RUN)], None),  # fmt: skip
    "config": (Annotated[Path | None, typer.Option(
        help="JSON file of config keys, or a preset's name; overrides args.json and the task preset.",
        rich_help_panel=settings.RUN)], None),  # fmt: skip
    "set_": (Annotated[list[str] | None, typer.Option(
        "--set", help="Any setting without a flag of its own: --set KEY=VALUE (repeatable; VALUE as JSON, else "
        "text), e.g. --set decay_norm_bias=false.", rich_help_panel=settings.RUN)], None),  # fmt: skip
}


def flag_type(s: settings.Setting) -> type:
    """What the flag's text becomes before the record checks it: parsed text stays text."""
    if s.parse is not None or s.kind == "text" or isinstance(s.default, str):
        return str
    if s.kind == "path":
        return Path
    return type(s.default)


def option(s: settings.Setting, task: str, resolved: dict | None) -> inspect.Parameter:
    """The train-TASK flag of one setting: its help ends with the default this task resolves to."""
    help_ = s.help
    if resolved is not None and s.key != "data":
        value = resolved[s.key]
        shown = " ".join(map(str, value)) if isinstance(value, list) else json.dumps(value)
        help_ += f" \\[default: {shown}]"  # escaped: not rich markup
    decls = [f"{s.flag}/--no-{s.flag[2:]}"] if isinstance(s.default, bool) else []
    info = typer.Option(*decls, help=help_, rich_help_panel=s.panel or None,
                        hidden=bool(s.only_for) and task not in s.only_for)  # fmt: skip
    hint = Annotated[flag_type(s) | None, info]
    return inspect.Parameter(s.key, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)


def make_train_command(task: str):
    from maskcls import config as config_mod

    try:
        resolved = config_mod.resolve(task, registries=False)
    except Exception:  # a broken own args.json: the command itself will say so, one line
        resolved = None
    flagged = [s for s in settings.SETTINGS if s.panel is not None]
    params = [option(s, task, resolved) for s in flagged]
    params += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=d, annotation=h)
               for k, (h, d) in OWN.items()]  # fmt: skip

    def command(**given) -> None:
        from maskcls.engine.trainer import train  # first: it fills the registries the settings are checked against

        own = {k: given.pop(k) for k in OWN}
        flags = {}
        for key, value in given.items():
            s = settings.BY_KEY[key]
            if value is not None and value is not False and s.only_for and task not in s.only_for:
                where = ", ".join(f"train-{t}" for t in s.only_for)
                raise typer.BadParameter(f"applies to {where} only", param_hint=s.flag)
            if value is not None and s.parse is not None:
                try:
                    value = s.parse(value)
                except ValueError as e:
                    raise typer.BadParameter(str(e), param_hint=s.flag) from None
            flags[key] = str(value) if isinstance(value, Path) else value
        if task == "age" and flags["head"] is not None:  # train-age --head ordinal: the age head's kind
            if flags["age_head"] is not None:
                raise typer.BadParameter("give the age head's kind once: --head or --age-head", param_hint="--head")
            kinds = config_mod.choices("age_head")
            if flags["head"] not in kinds:
                raise typer.BadParameter(f"train-age's head is one of {', '.join(kinds)} (got {flags['head']!r})",
                                         param_hint="--head")  # fmt: skip
            flags["age_head"], flags["head"] = flags["head"], None
        sets = parse_set(own["set_"] or [])
        if own["resume"] is not None:
            if own["config"] is not None:
                raise typer.BadParameter("--resume continues a run with its own config", param_hint="--config")
            given = {k for k, v in flags.items() if v is not None}
            both = sorted(given & set(sets))  # as a new run refuses the pair (config.resolve)
            if both:
                raise typer.BadParameter(f"--set {both[0]}=... and its flag both given: keep one", param_hint="--set")
            train(None, resume=own["resume"], overrides={**flags, **sets}, task=task)
            return
        train(config_mod.resolve(task, own["config"], flags, sets))

    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = (
        f"Train the {task} model on person-held-out folds; best checkpoint by validation macro-F1.\n\n"
        f"Defaults: args.json < configs/{task}.json < --config FILE < --set KEY=VALUE < flags. Example:\n\n"
        f"[bold]maskcls train-{task} --data crops/ --backbone resnet18 --epochs 10 --folds 5 --fold all[/]"
    )
    command.__name__ = f"train_{task}"
    return command

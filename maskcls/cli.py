"""The `maskcls` command line: registers commands, turns MaskclsError into one line and exit code 2."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from maskcls.commands import audit, cache, crop, eda, export, make_demo, predict, runs, submit, train
from maskcls.commands import config as config_cmd
from maskcls.errors import MaskclsError

try:  # Typer >= 0.20 vendors click as typer._click; older releases use click itself
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as click_exceptions

app = typer.Typer(
    name="maskcls",
    help="Face-image classification toolkit for the mask contest: crop, eda, train, predict, ensemble, submit.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("make-demo", rich_help_panel="Data")(make_demo.make_demo_command)
app.command("eda", rich_help_panel="Data")(eda.eda_command)
app.command("crop", rich_help_panel="Data")(crop.crop_command)
app.command("cache", rich_help_panel="Data")(cache.cache_command)
for _task in ("mask", "gender", "age", "joint"):
    app.command(f"train-{_task}", rich_help_panel="Train")(train.make_train_command(_task))
app.command("tune-thresholds", rich_help_panel="Predict and submit")(predict.tune_thresholds_command)
app.command("predict", rich_help_panel="Predict and submit")(predict.predict_command)
app.command("runs", rich_help_panel="Train")(runs.runs_command)
app.command("audit", rich_help_panel="Train")(audit.audit_command)
app.add_typer(config_cmd.app, name="config", rich_help_panel="Settings")
app.command("ensemble", rich_help_panel="Predict and submit")(submit.ensemble_command)
app.command("pseudo-label", rich_help_panel="Predict and submit")(submit.pseudo_label_command)
app.command("submit", rich_help_panel="Predict and submit")(submit.submit_command)
app.command("score", rich_help_panel="Predict and submit")(submit.score_command)
app.command("export", rich_help_panel="Predict and submit")(export.export_command)


def join_img_size(argv: list[str]) -> list[str]:
    """Let `--img-size 256 192` (and `--size H W`) through as one value (click options take a fixed count)."""
    out = list(argv)
    for i, a in enumerate(out[:-2]):
        if a in ("--img-size", "--size") and out[i + 1].isdigit() and out[i + 2].isdigit():
            out[i + 1 : i + 3] = [f"{out[i + 1]} {out[i + 2]}"]
            break
    return out


def main(argv: list[str] | None = None) -> int:
    """Console-script entry: run the app, map known errors to exit codes without tracebacks."""
    argv = join_img_size(list(sys.argv[1:] if argv is None else argv))
    try:
        if any(a == "--gpus" or a.startswith("--gpus=") for a in argv):
            from maskcls.engine import distributed

            argv, gpus = distributed.pop_gpus(argv)
            if gpus > 1 and not distributed.launched():  # --gpus N: the same command, N processes, torchrun
                return distributed.relaunch(argv, gpus)
        rv = app(args=argv, prog_name="maskcls", standalone_mode=False)
    except MaskclsError as e:
        # escaped: a message quoting brackets (a path, "pip install 'maskcls[onnx]'") is text, not rich markup
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        return e.exit_code
    except click_exceptions.ClickException as e:  # usage errors (bad flag or value): one line too, exit 2
        message = " ".join(e.format_message().split())
        if not message:  # bare `maskcls` (or a group without its command): the help was shown, nothing failed
            return 0
        ctx = getattr(e, "ctx", None)
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        Console(stderr=True).print(f"[bold red]error:[/] {escape(message + hint)}", highlight=False, soft_wrap=True)
        return e.exit_code
    except typer.Abort:
        Console(stderr=True).print("aborted")
        return 130
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())

"""One record per setting (maskcls/settings.py): what is derived from it stays derived, and current."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest
import typer

from maskcls import config, registry, settings
from maskcls.commands.train import OWN, make_train_command
from maskcls.config import ARGS_FILE, ROOT
from maskcls.settings import SETTINGS, Setting


def test_packaged_args_json_is_written_from_the_records():
    assert ARGS_FILE.read_text() == settings.args_json(), "args.json is stale: run `make settings`"
    assert list(json.loads(ARGS_FILE.read_text())) == [s.key for s in SETTINGS]


def test_readme_settings_table_is_generated_and_current():
    readme = (ROOT / "README.md").read_text()
    assert settings.with_table(readme) == readme, "README's settings table is stale: run `make settings`"
    table = readme.split(settings.README_BEGIN)[1].split(settings.README_END)[0]
    assert all(f"| `{s.key}` |" in table for s in SETTINGS)


def test_every_record_is_consistent_with_what_checks_it():
    for s in SETTINGS:
        assert s.help.strip(), s.key
        if isinstance(s.choices, str):  # a registry: filled by the engine/data modules, holding the default
            assert registry.known(s.choices), s.key
            assert s.default in registry.names(s.choices), s.key
        elif s.choices:
            assert s.default in s.choices, s.key
        if s.default is None:
            assert s.kind in ("path", "text"), s.key
    assert config.defaults() == settings.defaults()  # every default passes its own record's checks
    assert settings.RESUME_KEYS == ("epochs", "workers", "cache_dir", "device", "wandb")


def test_train_flags_are_the_records_with_a_panel():
    params = inspect.signature(make_train_command("gender")).parameters
    assert list(params) == [s.key for s in SETTINGS if s.panel is not None] + list(OWN)
    hidden = {k for k in params if k not in OWN and params[k].annotation.__metadata__[0].hidden}
    assert hidden == {"head", "age_head", "age_gate", "drop_ages"}  # the records' only_for leave gender out
    assert "[default: \"smooth\"]" in params["loss"].annotation.__metadata__[0].help  # configs/gender.json's


def test_a_new_setting_is_one_record(monkeypatch, tmp_path, capsys):
    """What adding a key takes: its record (and the code that reads it). Checks, flag, help, README row."""
    new = Setting("dropout", 0.0, "Dropout before each head (0 = off).", "no row measured it.",
                  panel=settings.MODEL, range=(0, 1, True, False))  # fmt: skip
    monkeypatch.setattr(settings, "SETTINGS", (*SETTINGS, new))
    monkeypatch.setattr(settings, "BY_KEY", {**settings.BY_KEY, "dropout": new})
    monkeypatch.setenv(config.OWN_DIR_ENV, str(tmp_path))
    assert config.resolve("joint", flags={"dropout": 0.2}).dropout == 0.2
    assert config.resolve("joint").dropout == 0.0
    with pytest.raises(config.MaskclsError, match=r"--dropout must be in \[0, 1\) \(got 1.5\)"):
        config.resolve("joint", flags={"dropout": 1.5})
    with pytest.raises(config.MaskclsError, match="--set: dropout must be float"):
        config.resolve("joint", sets={"dropout": "high"})
    command = make_train_command("joint")
    info = inspect.signature(command).parameters["dropout"].annotation.__metadata__[0]
    assert info.help.startswith("Dropout before each head") and info.rich_help_panel == settings.MODEL
    assert "| `dropout` | `0.0` | `--dropout` |" in settings.markdown_table()
    app = typer.Typer()
    app.command()(command)
    with pytest.raises(SystemExit):  # the real Typer parser refuses a bad value
        app(["--dropout", "nan-ish"])
    assert "Invalid value for '--dropout'" in capsys.readouterr().err


def test_records_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SETTINGS[0].default = "x"


def test_head_dropout_reaches_the_model():
    """The setting added as one record: the flag's value is the model's dropout, active in training only."""
    import torch

    from maskcls.models import build_model

    cfg = config.resolve("gender", flags={"backbone": "test_resnet", "pretrained": False, "img_size": [32, 32],
                                          "head_dropout": 0.5})  # fmt: skip
    model = build_model(cfg, {"gender": 2})
    assert model.drop.p == 0.5
    x = torch.randint(0, 255, (4, 3, 32, 32), dtype=torch.uint8)
    torch.manual_seed(0)
    model.train()
    assert not torch.equal(model(x)["gender"], model(x)["gender"])
    model.eval()
    assert torch.equal(model(x)["gender"], model(x)["gender"])

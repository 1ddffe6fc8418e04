"""A battery of bad inputs: each one is exit code 2, one line naming the flag or file, no traceback,
and nothing left behind in the folder the command was told to write to."""

import json
import shutil

import pandas as pd
import pytest

from tests.conftest import SMOKE, run_cli


@pytest.fixture(scope="module")
def bad(demo_data, tmp_path_factory):
    """Broken files next to a copy of the demo set; {name: path}."""
    root = tmp_path_factory.mktemp("bad")
    files = {"text": root / "notes.txt", "unknown_key": root / "c.json", "bad_json": root / "b.json"}
    files["text"].write_text("hello\n")
    files["unknown_key"].write_text(json.dumps({"epoch": 3}))
    files["bad_json"].write_text("{epochs: 3")
    aged = root / "aged"
    shutil.copytree(demo_data, aged)
    first = sorted((aged / "train" / "images").glob("0*"))[0]
    first.rename(first.with_name(first.name.rsplit("_", 1)[0] + "_200"))
    files["aged"] = aged
    unparsable = root / "unparsable"
    shutil.copytree(demo_data, unparsable)
    (unparsable / "train" / "images" / "someone").mkdir()
    files["unparsable"] = unparsable
    ids = pd.read_csv(demo_data / "eval" / "info.csv")["ImageID"]
    preds = pd.DataFrame({"ImageID": ids, "mask_0": 1.0, "mask_1": 0.0, "mask_2": 0.0, "gender_0": 1.0,
                          "gender_1": 0.0, "age_0": 1.0, "age_1": 0.0, "age_2": 0.0})  # fmt: skip
    files["preds"] = root / "preds.csv"
    preds.to_csv(files["preds"], index=False)
    for name, value in (("key99", 99), ("key_text", "x")):  # answer keys with one class that is no class
        key = pd.DataFrame({"ImageID": ids, "ans": 0})
        key["ans"] = key["ans"].astype(object)
        key.loc[3, "ans"] = value
        files[name] = root / f"{name}.csv"
        key.to_csv(files[name], index=False)
    faces = root / "faces"  # --external faces, one of them a 0-byte photo
    faces.mkdir()
    for k, age in enumerate((25, 40, 70)):
        shutil.copy(next((demo_data / "train" / "images").glob("*/normal.jpg")), faces / f"{age}_{k % 2}_0_2017.jpg")
    (faces / "33_0_0_empty.jpg").write_bytes(b"")
    files["empty_photo"] = faces
    files["deep_json"] = root / "deep.json"
    files["deep_json"].write_text('{"lr": ' + "[" * 30000 + "]" * 30000 + "}")
    person = sorted((demo_data / "train" / "images").glob("0*"))[0].name.split("_")[0]
    files["relabel_sup2"] = root / "relabel.csv"
    files["relabel_sup2"].write_text(f"person,gender,age\n{person},,²\n")
    corrupt = root / "corrupt-run"
    (corrupt / "fold0").mkdir(parents=True)
    (corrupt / "config.json").write_text('{"task": "age", "epochs": ')
    files["corrupt_run"] = corrupt
    text = preds.astype(object)
    text.loc[2, "gender_1"] = "x"
    files["preds_text"] = root / "preds_text.csv"
    text.to_csv(files["preds_text"], index=False)
    upper = preds.assign(age_upper=60).astype({"age_upper": object})
    upper.loc[3, "age_upper"] = "sixty"
    files["preds_upper"] = root / "preds_upper.csv"
    upper.to_csv(files["preds_upper"], index=False)
    return files


# (command and arguments, text the one-line error must contain). DATA, OUT and {file} are filled in.
CASES = [
    (["train-age", *SMOKE, "--epochs", "0"], "--epochs must be in [1, 10000] (got 0)"),
    (["train-age", *SMOKE, "--lr", "-1"], "--lr must be in (0, 1000] (got -1.0)"),
    (["train-age", *SMOKE, "--batch-size", "0"], "--batch-size must be in [1, 65536] (got 0)"),
    (["train-age", *SMOKE, "--accum-steps", "0"], "--accum-steps must be in [1, 1024] (got 0)"),
    (["train-age", *SMOKE, "--oversample", "2"], "--oversample must be in [0, 1] (got 2.0)"),
    (["train-age", *SMOKE, "--img-size", "100000"], "--img-size: must be one number or H W, each in 16..1024"),
    (["train-age", *SMOKE, "--img-size", "20x"], "--img-size: expected one number or H W, got '20x'"),
    (["train-age", *SMOKE, "--optimizer", "lion"], "--optimizer must be one of adam, adamw, sgd"),
    (["train-age", *SMOKE, "--loss", "focla"], "did you mean 'focal'?"),
    (["train-age", *SMOKE, "--set", "decay_nrom_bias=false"], "--set: unknown config key 'decay_nrom_bias'"),
    (["train-age", *SMOKE, "--set", "split_method=random"], "split_method must be one of sgkf, apart"),
    (["train-age", *SMOKE, "--set", "lr"], "--set: expected KEY=VALUE"),
    (["train-age", *SMOKE, "--set", "epochs=2"], "--set epochs=... and --epochs both given"),
    (["train-age", *SMOKE, "--backbone", "test_vit", "--img-size", "60", "45"], "test_vit cannot take it"),
    (["train-age", *SMOKE, "--age-upper", "20"], "--age-upper must be in [31, 120] (got 20)"),
    (["train-age", *SMOKE, "--folds", "1"], "--folds must be in [2, 1000] (got 1)"),
    (["train-age", *SMOKE, "--fold", "7", "--folds", "5"], "fold 7 does not exist with 5 folds"),
    (["train-age", *SMOKE, "--name", "../X"], "--name: must be a plain folder name"),
    (["train-age", *SMOKE, "--backbone", "resnet1B"], "unknown backbone 'resnet1B'"),
    (["train-age", *SMOKE, "--weights", "{text}"], "notes.txt: not a PyTorch weights file"),
    (["train-age", *SMOKE, "--weights", "missing.pt"], "missing.pt: weights file not found"),
    (["train-age", *SMOKE, "--config", "{unknown_key}"], "unknown config key 'epoch' (did you mean epochs?)"),
    (["train-age", *SMOKE, "--config", "{bad_json}"], "b.json: invalid JSON"),
    (["train-age", *SMOKE, "--extra", "{text}"], "notes.txt: missing column(s) ImageID"),
    (["train-age", *SMOKE, "--epoch", "3"], "No such option: --epoch"),
    (["train-age", *SMOKE, "--data", "{aged}"], "age 200 in the folder name is not plausible"),
    (["train-age", *SMOKE, "--data", "{unparsable}"], "someone: folder name does not parse"),
    (["train-age", *SMOKE, "--data", "nowhere"], "nowhere/train/images: directory not found"),
    (["predict", "{text}", "--out", "OUT/p.csv"], "notes.txt: not a PyTorch checkpoint"),
    (["predict", "missing-run", "--out", "OUT/p.csv"], "'missing-run' does not exist"),
    (["predict", "{text}", "--out", "OUT/p.csv", "--batch-size", "0"], "--batch-size"),
    (["submit", "--joint", "{preds}", "--age", "{preds}", "--out", "OUT"], "--joint and --age both give age"),
    (["submit", "--joint", "missing.csv", "--out", "OUT"], "missing.csv: file not found"),
    (["submit", "--joint", "{text}", "--out", "OUT"], "notes.txt: missing column(s) ImageID"),
    (["submit", "--joint", "{preds}", "--out", "OUT", "--answers", "{text}"], "notes.txt: missing column(s)"),
    (["ensemble", "{preds}", "{preds}", "--weights", "a,b", "--out", "OUT/e.csv"], "--weights must be"),
    (["ensemble", "{preds}", "{preds}", "--weights", "nan,1", "--out", "OUT/e.csv"], "finite non-negative numbers"),
    (["ensemble", "{preds}", "{preds}", "--weights", "inf,1", "--out", "OUT/e.csv"], "finite non-negative numbers"),
    (["ensemble", "{preds}", "{preds}", "--weights", "1e308,1e308", "--out", "OUT/e.csv"], "positive, finite sum"),
    (["ensemble", "{preds}", "{preds}", "--weights", "0,0", "--out", "OUT/e.csv"], "positive, finite sum"),
    (["submit", "--joint", "{preds}", "--out", "OUT", "--answers", "{key99}"], "ans '99' is not a class 0..17"),
    (["submit", "--joint", "{preds}", "--out", "OUT", "--answers", "{key_text}"], "ans 'x' is not a class 0..17"),
    (["train-age", *SMOKE, "--drop-ages", "27-"], "'27-' is not an age or a range"),
    (["train-age", *SMOKE, "--drop-ages", "0-1000000000"], "ages go up to 120"),
    (["train-age", *SMOKE, "--drop-ages", "²"], "'²' is not an age or a range"),
    (["train-age", *SMOKE, "--external", "{empty_photo}"], "empty.jpg"),
    (["train-age", *SMOKE, "--seed", "-1"], "--seed must be in [0, 4294967295] (got -1)"),
    (["train-age", *SMOKE, "--seed", "99999999999999999999"], "--seed must be in [0, 4294967295]"),
    (["train-age", *SMOKE, "--set", "seed=-1"], "seed must be in [0, 4294967295] (got -1)"),
    (["train-age", *SMOKE, "--device", "mps"], "no Apple GPU (MPS)"),
    (["train-age", *SMOKE, "--set", "lr=" + "[" * 30000 + "]" * 30000], "--set: lr: value nested too deeply"),
    (["train-age", *SMOKE, "--config", "{deep_json}"], "deep.json: JSON nested too deeply"),
    (["train-age", *SMOKE, "--relabel", "{relabel_sup2}"], "age '²' is not a whole number of years"),
    (["train-age", *SMOKE, "--set", "task=mask"], "--set: sets task 'mask' but the command trains 'age'"),
    (["train-age", *SMOKE, "--resume", "{corrupt_run}"], "config.json: invalid JSON"),
    (["ensemble", "{preds}", "{preds_text}", "--out", "OUT/e.csv"], "column gender_1: 'x' is not a number"),
    (["submit", "--joint", "{preds_text}", "--out", "OUT"], "column gender_1: 'x' is not a number"),
    (["ensemble", "{preds}", "{preds_upper}", "--out", "OUT/e.csv"], "age_upper must be one whole number in 31..120"),
    (["crop", "--out", "OUT", "--size", "100000"], "--size: must be one number or H W, each in 16..1024"),
    (["crop", "--out", "OUT", "--margin", "-1"], "--margin"),
    (["crop", "--out", "OUT", "--detectors", "yolo"], "unknown detector 'yolo'"),
    (["eda", "--age-upper", "10"], "--age-upper"),
    (["pseudo-label", "--joint", "{preds}", "--out", "OUT/p.csv", "--threshold", "2"], "--threshold must be in"),
]


@pytest.mark.parametrize("args,needle", CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CASES])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(args, needle, bad, demo_data, tmp_path, capsys):
    out = tmp_path / "out"
    filled = [str(a).replace("OUT", str(out)).format(**{k: str(v) for k, v in bad.items()}) for a in args]
    if "--data" not in filled and filled[0] != "ensemble":
        filled += ["--data", str(demo_data)]
    if filled[0].startswith("train-"):
        filled += ["--out", str(out)]
    code, _, err = run_cli(capsys, *filled)
    assert code == 2, err
    assert needle in err, err
    assert err.strip().count("\n") == 0 and "Traceback" not in err, err
    assert not out.exists() or not any(out.iterdir()), list(out.rglob("*"))


@pytest.mark.parametrize("cmd", ["train-age", "audit", "eda"])
@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_output_folder_that_cannot_be_one_is_a_line(cmd, where, demo_data, tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("a file\n")
    out = blocker if where == "a file" else blocker / "sub"
    args = {"train-age": ["train-age", "--data", demo_data, *SMOKE, "--out", out],
            "audit": ["audit", tmp_path / "no-run", "--out", out],
            "eda": ["eda", "--data", demo_data, "--plots", out]}[cmd]  # fmt: skip
    if cmd == "audit":  # audit reads its run first: give it a real one
        code, _, err = run_cli(capsys, "train-joint", "--data", demo_data, *SMOKE, "--folds", "2", "--fold", "all",
                               "--out", tmp_path / "r")  # fmt: skip
        assert code == 0, err
        args[1] = tmp_path / "r" / "joint-test_resnet"
    code, _, err = run_cli(capsys, *args)
    flag = "--plots" if cmd == "eda" else "--out"
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    if where == "a file":  # typer's own check (a folder option), or maskcls's
        assert "is a file" in err and str(out) in err, err
    else:
        assert f"{flag} {out}: a part of the path is a file" in err, err
    assert blocker.read_text() == "a file\n"


def test_bare_maskcls_shows_help_and_no_error(capsys):
    code, out, err = run_cli(capsys)
    assert code == 0 and "Usage" in out + err and "error" not in err


def test_submit_refuses_an_info_csv_that_names_a_path(demo_data, bad, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(demo_data, data)
    info = pd.read_csv(data / "eval" / "info.csv")
    info.loc[0, "ImageID"] = "../x.jpg"
    info.to_csv(data / "eval" / "info.csv", index=False)
    code, _, err = run_cli(capsys, "submit", "--joint", bad["preds"], "--data", data, "--out", tmp_path / "s")
    assert code == 2 and "ImageID '../x.jpg' is not a plain file name" in err and not (tmp_path / "s").exists()

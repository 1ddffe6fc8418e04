"""Unit tests of the engine's parts: losses, mixers, LR schedules, evaluate, flat18 marginals, heads, decoding."""

import ast
import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from maskcls import config, heads, labels
from maskcls.config import ROOT, Config
from maskcls.data.dataset import encoded_size, read_image, reduction
from maskcls.engine.losses import LOSSES, CrossEntropy, F1PlusCE, Focal, neighbor_smoothing
from maskcls.engine.metrics import evaluate
from maskcls.engine.mixers import CutMix, MixUp, RandomMix, build_mixer
from maskcls.engine.optim import OPTIMIZERS, SCHEDULERS, lr_factor, param_groups


def cfg_with(**kw) -> Config:
    return Config({**config.defaults(), **kw})


# -- losses -------------------------------------------------------------------------------------
def test_cross_entropy_on_one_hot_targets_is_torchs():
    logits, y = torch.randn(8, 3, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    ce = CrossEntropy()
    assert torch.allclose(ce(logits, ce.targets(y, 3)), F.cross_entropy(logits, y))


def test_focal_is_ce_at_gamma_0_and_down_weights_easy_examples():
    logits, y = torch.tensor([[4.0, 0.0, 0.0], [0.2, 0.0, 0.1]]), torch.tensor([0, 0])
    t = CrossEntropy().targets(y, 3)
    assert torch.allclose(Focal(0.0)(logits, t), CrossEntropy()(logits, t))
    easy, hard = Focal(2.0)(logits[:1], t[:1]), Focal(2.0)(logits[1:], t[1:])
    ce_easy, ce_hard = CrossEntropy()(logits[:1], t[:1]), CrossEntropy()(logits[1:], t[1:])
    assert easy / ce_easy < 0.01 and hard / ce_hard > 0.3  # the easy one is nearly ignored


def test_f1_plus_ce_is_near_zero_when_right_and_large_when_wrong():
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    right, wrong = F.one_hot(y, 3).float() * 20, F.one_hot((y + 1) % 3, 3).float() * 20
    loss = F1PlusCE()
    t = loss.targets(y, 3)
    assert loss(right, t) < 1e-3 and loss(wrong, t) > 10


def test_neighbor_smoothing_only_touches_adjacent_groups_and_rows_sum_to_1():
    t = neighbor_smoothing(torch.tensor([0, 1, 2]), eps=0.2)
    assert torch.allclose(t.sum(1), torch.ones(3))
    assert t[0, 2] == 0 and t[2, 0] == 0 and t[1, 0] == pytest.approx(0.1)


def test_loss_builders_own_their_hyperparameters():
    cfg = cfg_with(focal_gamma=3.5, label_smoothing=0.2)
    assert LOSSES["focal"](cfg, False).gamma == 3.5
    neighbor_age, neighbor_mask = LOSSES["neighbor"](cfg, True), LOSSES["neighbor"](cfg, False)
    assert (neighbor_age.smoothing, neighbor_mask.smoothing, neighbor_age.eps) == ("neighbor", "uniform", 0.2)
    assert LOSSES["ce"](cfg, True).targets(torch.tensor([1]), 3).tolist() == [[0.0, 1.0, 0.0]]  # no smoothing


# -- mixers -------------------------------------------------------------------------------------
def _batch(n=6):
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, 16, 12).clone()  # image i is all i
    return x, {"h": F.one_hot(torch.arange(n), n).float()}


def test_mixup_mixes_images_and_targets_with_the_same_weight():
    torch.manual_seed(0)
    x, t = _batch()
    mx, mt = MixUp(0.4)(x, t, torch.Generator().manual_seed(1))
    assert torch.allclose(mt["h"].sum(1), torch.ones(6))
    for i in range(6):
        lam, others = float(mt["h"][i, i]), mt["h"][i].clone()
        others[i] = -1
        partner = int(others.argmax())  # the image whose label took the rest of the weight
        assert torch.allclose(mx[i], torch.full_like(mx[i], lam * i + (1 - lam) * partner), atol=1e-5)


def test_cutmix_target_weight_is_the_pasted_area():
    torch.manual_seed(3)
    x, t = _batch()
    mx, mt = CutMix(1.0)(x, t, torch.Generator().manual_seed(2))
    mixed = 0
    for i in range(6):
        own = float((mx[i, 0] == i).float().mean())
        assert mt["h"][i, i] == pytest.approx(own, abs=1e-6)  # also 1.0 for an image paired with itself
        mixed += own < 1
    assert mixed >= 3  # it did paste: a CutMix that mixes nothing fails here


def test_random_mix_passes_through_or_mixes_and_is_deterministic_per_generator():
    x, t = _batch()
    never = RandomMix([MixUp(1.0)], p=0.0)
    assert all(never(x, t, torch.Generator().manual_seed(s))[0] is x for s in range(10))
    both = RandomMix([MixUp(1.0), CutMix(1.0)], p=0.5)
    mixed = [not torch.equal(both(x, t, torch.Generator().manual_seed(s))[0], x) for s in range(40)]
    assert 10 < sum(mixed) < 30
    torch.manual_seed(0)
    a = both(x, t, torch.Generator().manual_seed(5))[0]
    torch.manual_seed(0)
    assert torch.equal(a, both(x, t, torch.Generator().manual_seed(5))[0])
    assert build_mixer(cfg_with(mixup=0.0, cutmix=0.0)) is None
    assert [type(m) for m in build_mixer(cfg_with(mixup=0.2, cutmix=1.0)).mixers] == [MixUp, CutMix]


# -- optimizers and LR schedules ----------------------------------------------------------------
def test_warm_up_then_cosine_to_zero():
    f = lr_factor(cfg_with(epochs=10, warmup_epochs=1, scheduler="cosine"), steps_per_epoch=10)
    assert [f(s) for s in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert f(9) == pytest.approx(1.0) and f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert f(99) < 0.001 and all(f(s) >= f(s + 1) for s in range(10, 99))


def test_step_exponential_and_constant_schedules():
    step = lr_factor(cfg_with(epochs=9, warmup_epochs=0, scheduler="step", step_size=3, gamma=0.5), 4)
    assert [step(e * 4) for e in range(9)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]
    expo = lr_factor(cfg_with(epochs=5, warmup_epochs=0, scheduler="exponential", exp_gamma=0.9), 2)
    assert [expo(e * 2 + 1) for e in range(3)] == pytest.approx([1, 0.9, 0.81])
    assert {lr_factor(cfg_with(epochs=3, warmup_epochs=0, scheduler="none"), 5)(s) for s in range(15)} == {1.0}


def test_no_decay_on_biases_and_norm_layers_when_asked():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(4, 2))
    [one] = param_groups(model, 0.05, decay_norm_bias=True)
    assert one["weight_decay"] == 0.05 and len(one["params"]) == 6
    decay, plain = param_groups(model, 0.05, decay_norm_bias=False)
    assert [p.ndim for p in decay["params"]] == [4, 2] and plain["weight_decay"] == 0.0
    assert len(plain["params"]) == 4  # conv bias, bn weight + bias, linear bias
    opt = OPTIMIZERS["sgd"]([decay, plain], cfg_with(lr=0.1))
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0] and opt.param_groups[0]["nesterov"]


def test_a_name_no_registry_holds_is_one_line():
    """A saved config is not rechecked against today's registries; what it names fails where it is built."""
    with pytest.raises(config.MaskclsError, match="loss 'focla' is not one of ce, smooth, neighbor, focal, f1; "
                                                  "did you mean 'focal'"):  # fmt: skip
        LOSSES["focla"]


def test_config_choices_are_the_registries():
    from maskcls.data.splits import SPLITS
    from maskcls.data.transforms import PRESETS

    assert config.choices("optimizer") == list(OPTIMIZERS) and config.choices("scheduler") == list(SCHEDULERS)
    assert config.choices("loss") == list(LOSSES) and config.choices("augment") == list(PRESETS)
    assert config.choices("split_method") == list(SPLITS) and config.choices("task") == [
        "mask", "gender", "age", "joint"]  # fmt: skip
    with pytest.raises(Exception, match="did you mean 'focal'"):
        config.resolve("age", flags={"loss": "focla"})


# -- evaluate, marginals, heads -----------------------------------------------------------------
def test_evaluate_scores_each_head_and_the_18_classes_from_three_heads():
    y = {"mask": np.array([0, 1, 2, 0]), "gender": np.array([0, 1, 0, 1]), "age": np.array([0, 1, 2, 2])}
    y["class"] = labels.encode(y["mask"], y["gender"], y["age"])
    probs = {h: np.eye(heads.HEADS[h].size())[v] for h, v in y.items() if h != "class"}
    probs["age"] = np.eye(3)[[0, 1, 2, 1]]  # one age wrong
    m = evaluate(probs, y)
    assert m["mask"]["f1"] == 1 and m["gender"]["f1"] == 1 and m["age"]["acc"] == 0.75
    assert m["class"]["acc"] == 0.75 and m["score"] == m["class"]["f1"]
    assert evaluate({"age": probs["age"]}, y)["score"] == m["age"]["f1"]  # one head: its own macro-F1


def test_flat18_marginals_are_the_per_head_distributions():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(18), size=50)
    marg = heads.marginals(p)
    for h in heads.FACTORS:
        assert marg[h].shape == (50, heads.HEADS[h].size()) and np.allclose(marg[h].sum(1), 1)
    m, g, a = labels.decode(np.arange(18))
    assert np.allclose(marg["age"][:, 2], p[:, a == 2].sum(1)) and np.allclose(marg["mask"][:, 1], p[:, m == 1].sum(1))
    one_hot = heads.marginals(np.eye(18))
    assert [tuple(one_hot[h][c].argmax() for h in heads.FACTORS) for c in range(18)] == list(zip(m, g, a, strict=True))
    assert np.array_equal(heads.predict_classes({"class": p}), p.argmax(1))


def test_heads_derive_names_columns_and_tasks():
    assert heads.task_heads("joint") == ("mask", "gender", "age") and heads.task_heads("joint", "flat18") == ("class",)
    assert heads.HEADS["class"].columns()[-1] == "class_17"
    assert heads.HEADS["gender"].columns() == ["gender_0", "gender_1"]
    assert heads.label_map(["age", "mask"], 59) == {"age": ["<30", "30-58", ">=59"], "mask": list(labels.MASK_NAMES)}
    from maskcls.post.probs import COLUMN_RE

    assert all(COLUMN_RE.match(c) for h in heads.HEADS.values() for c in h.columns())


# -- layers: nothing imports upward, by import or by string ----------------------------------------
# Lowest first; a module may import its own layer and those below. `maskcls.engine` and
# `maskcls.data` stand for every module inside them.
LAYERS = [
    {"errors", "labels", "progress", "registry"},
    {"heads", "io", "plots", "runtime", "settings", "weights"},
    {"config", "data", "detectors"},
    {"models", "runs"},
    {"engine"},
    {"crop", "demo", "eda", "post", "predictor"},
    {"cli", "commands", "__main__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
MODULE_RE = re.compile(r"maskcls(\.\w+)+")


def reaches(source: str) -> set[str]:
    """Every maskcls module the source names: imports, and strings that spell a module path
    (importlib.import_module("maskcls.engine.optim"), or a table of such names read later)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("maskcls"):
            names |= {node.module} | {f"maskcls.{a.name}" for a in node.names if node.module == "maskcls"}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith("maskcls.")}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_RE.fullmatch(node.value):
            names.add(node.value)
    return {n.split(".")[1] for n in names if n != "maskcls"}


def upward(module: str, source: str) -> list[str]:
    return sorted(t for t in reaches(source) if RANK[t] > RANK[module])


def test_nothing_imports_a_layer_above_it():
    files = sorted((ROOT / "maskcls").rglob("*.py"))
    tops = {f.relative_to(ROOT / "maskcls").parts[0].removesuffix(".py") for f in files} - {"__init__"}
    assert tops == set(RANK), f"every module has a layer: {sorted(tops ^ set(RANK))}"
    for path in files:
        module = path.relative_to(ROOT / "maskcls").parts[0].removesuffix(".py")
        if module == "__init__":
            continue
        up = upward(module, path.read_text())
        assert not up, f"{path.relative_to(ROOT)} reaches up to {up}"


def test_the_layering_check_sees_a_reach_by_string():
    """What config.py once did: name engine modules in strings and import them by importlib."""
    by_call = 'import importlib\nLOSSES = importlib.import_module("maskcls.engine.losses").LOSSES\n'
    by_table = 'REGISTRIES = {"loss": ("maskcls.engine.losses", "LOSSES")}\n'
    assert upward("config", by_call) == ["engine"] and upward("config", by_table) == ["engine"]
    assert upward("config", '"""Reads maskcls.engine.losses, in a sentence."""\nimport maskcls.errors\n') == []


# -- decoding at the file's own size -------------------------------------------------------------
@pytest.mark.parametrize("ext,params", [(".jpg", []), (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (".png", [])])
def test_the_encoded_size_picks_the_reduced_decode(tmp_path, ext, params, monkeypatch):
    img = np.random.default_rng(0).integers(0, 255, (256, 192, 3), dtype=np.uint8)
    path = str(tmp_path / f"crop{ext}")
    cv2.imwrite(path, img, params)
    assert encoded_size(Path(path).read_bytes()) == (256, 192)
    assert reduction((256, 192), (128, 96)) == 2 and reduction((512, 384), (128, 96)) == 4
    calls = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda buf, flag: calls.append(flag) or real(buf, flag))
    out = read_image(path, (128, 96))
    assert out.shape == (128, 96, 3) and len(calls) == 1  # decoded once, not once too small and again
    assert encoded_size(b"\xff\xd8\xff\xe0garbage") is None and encoded_size(b"not an image") is None


# -- progress in log files ----------------------------------------------------------------------
def test_progress_writes_plain_lines_when_the_output_is_not_a_terminal():
    import io

    from rich.console import Console

    from maskcls.progress import LogProgress, plain_line

    buf = io.StringIO()
    with LogProgress(console=Console(file=buf, width=100), every=0.0, transient=True) as progress:
        task = progress.add_task("crop", total=3)
        for _ in range(3):
            progress.update(task, advance=1)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.startswith("crop: ")]
    assert [ln.split(",")[0] for ln in lines] == ["crop: 1/3 (33%)", "crop: 2/3 (67%)", "crop: 3/3 (100%)"]
    assert plain_line("epoch 2/12", 50, 200, 30.0) == "epoch 2/12: 50/200 (25%), 0:30 elapsed, about 1:30 left"


def test_shell_completion_script_is_offered():
    import shutil
    import subprocess

    exe = shutil.which("maskcls") or str(Path(__import__("sys").executable).parent / "maskcls")
    # what `maskcls --install-completion` puts in ~/.bashrc runs this (click's completion protocol)
    env = {**__import__("os").environ, "_MASKCLS_COMPLETE": "source_bash"}
    proc = subprocess.run([exe], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0 and "_maskcls_completion" in proc.stdout


def test_root_args_and_configs_are_the_packaged_defaults(monkeypatch):
    """The repository root's args.json and configs/ (what a team edits and commits) are the very files
    the wheel ships (maskcls/defaults/): one source, so the two cannot drift."""
    from maskcls.config import ARGS_FILE, CONFIG_DIR, OWN_DIR_ENV, layers

    assert (ROOT / "args.json").resolve() == ARGS_FILE.resolve()
    assert (ROOT / "configs").resolve() == CONFIG_DIR.resolve()
    assert {p.name for p in (ROOT / "configs").glob("*.json")} == {p.name for p in CONFIG_DIR.glob("*.json")}
    monkeypatch.delenv(OWN_DIR_ENV, raising=False)
    monkeypatch.chdir(ROOT)  # from the root, the root files are not counted twice as a team's own layer
    assert layers("age") == [ARGS_FILE, CONFIG_DIR / "age.json"]

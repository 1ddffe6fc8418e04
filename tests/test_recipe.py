"""The winners' recipe: half-image CutMix, EMA, gradient clipping, label audit, --exclude/--relabel,
the final fit, and the mask restyling augmentation."""

import json
import shutil

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from maskcls import config
from maskcls.data.table import load_table
from maskcls.data.transforms import MaskStyle
from maskcls.engine.mixers import AllHalves, CutMix, Halves, build_mixer, rare_partner
from maskcls.engine.trainer import FoldTrainer
from tests.conftest import TINY, run_cli
from tests.test_train import train


# -- half-image CutMix ---------------------------------------------------------------------------
def _batch(n=6, h=8, w=7):
    """Image k is filled with the value k, so every pixel says whose it is."""
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, h, w).clone()
    targets = {"gender": torch.eye(2)[torch.arange(n) % 2], "age": torch.eye(3)[torch.arange(n) % 3]}
    return x, targets


@pytest.mark.parametrize("seed", range(6))
def test_halves_pastes_exactly_half_and_mixes_targets_by_area(seed):
    x, targets = _batch(w=7)  # odd width: the pasted half is 3 of 7 columns, weighted 3/7
    gen = torch.Generator().manual_seed(seed)
    mixed, mixed_t = Halves(1.0)(x.clone(), targets, gen)
    for i in range(len(x)):
        other = mixed[i, 0] != i
        cols = other.any(0).nonzero().flatten()
        partner = mixed[i, 0][other].unique()
        if len(cols) == 0:  # paired with itself: nothing changes, the target neither
            assert torch.equal(mixed_t["age"][i], targets["age"][i])
            continue
        assert len(partner) == 1 and bool(other[:, cols].all())  # whole columns, of one partner
        assert cols.tolist() in ([0, 1, 2], [3, 4, 5, 6])  # the left or the right half
        j, lam = int(partner), 1 - len(cols) / 7
        for head in targets:
            assert torch.allclose(mixed_t[head][i], lam * targets[head][i] + (1 - lam) * targets[head][j])


def test_halves_tb_also_cuts_top_and_bottom_and_box_mode_stays_a_box():
    x, targets = _batch(n=8, h=8, w=8)
    seen = set()
    for seed in range(40):
        mixed, _ = AllHalves(1.0)(x.clone(), targets, torch.Generator().manual_seed(seed))
        for i in range(len(x)):
            other = (mixed[i, 0] != i).nonzero()
            if len(other):
                rows, cols = other[:, 0].unique().tolist(), other[:, 1].unique().tolist()
                seen.add("rows" if len(rows) == 4 and len(cols) == 8 else "cols" if len(cols) == 4 else "?")
    assert seen == {"rows", "cols"}
    cfg = config.Config({**config.defaults(), "cutmix": 1.0, "cutmix_mode": "halves", "cutmix_partner": "rare"})
    mixer = build_mixer(cfg)
    assert type(mixer.mixers[0]) is Halves and mixer.mixers[0].partner is rare_partner
    assert type(build_mixer(config.Config({**config.defaults(), "cutmix": 1.0})).mixers[0]) is CutMix


def test_rare_partner_draws_from_the_batchs_rarest_group():
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 0, 1])  # group 2 is rarest
    for seed in range(5):
        assert set(rare_partner(groups, torch.Generator().manual_seed(seed)).tolist()) == {5}
    tie = torch.tensor([0, 0, 1, 2])  # 1 and 2 tie: the older group
    assert set(rare_partner(tie, torch.Generator().manual_seed(0)).tolist()) == {3}


@pytest.mark.slow
def test_halves_rare_trains(demo_data, tmp_path, capsys):
    run, _ = train(capsys, tmp_path, demo_data, "joint", "--epochs", "1", "--cutmix", "1", "--cutmix-mode", "halves",
                   "--cutmix-partner", "rare")  # fmt: skip
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["cutmix_mode"], cfg["cutmix_partner"]) == ("halves", "rare") and (run / "fold0" / "best.pt").is_file()
    code, _, err = run_cli(capsys, "train-joint", "--data", demo_data, "--cutmix-mode", "halfs", "--out", tmp_path)
    assert code == 2 and "did you mean 'halves'" in err


# -- EMA and gradient clipping ---------------------------------------------------------------------
def _params(path, key="model"):
    state = torch.load(path, weights_only=True)[key]
    return {k: v for k, v in state.items() if v.is_floating_point() and "running" not in k}


@pytest.mark.slow
def test_ema_weights_differ_from_raw_and_resume_keeps_them(demo_data, tmp_path, capsys):
    whole, _ = train(capsys, tmp_path, demo_data, "gender", "--epochs", "3", "--ema", "0.9", "--name", "whole")
    last = torch.load(whole / "fold0" / "last.pt", weights_only=True)
    raw, ema = last["model"], last["ema"]
    assert any(not torch.allclose(raw[k], ema[k]) for k in raw if raw[k].is_floating_point())
    history = pd.read_csv(whole / "fold0" / "history.csv")
    assert {"raw_score", "ema_score", "weights"} <= set(history.columns)
    best = json.loads((whole / "fold0" / "metrics.json").read_text())
    assert best["weights"] in ("raw", "ema")
    # a resumed fold starts from the saved EMA weights, not from the raw ones
    from maskcls.data.splits import apply_folds, load_folds
    from maskcls.runs import Run

    cfg = Run(whole).resume_config({"epochs": 4})
    table = apply_folds(load_table(cfg), load_folds(whole / "folds.csv"))
    trainer = FoldTrainer(cfg, table, 0, whole / "fold0", [])
    trainer.resume()
    state = trainer.ema.module.state_dict()
    assert all(torch.equal(state[k], ema[k]) for k in ema)
    assert run_cli(capsys, "train-gender", "--resume", whole, "--epochs", "4")[0] == 0
    after = torch.load(whole / "fold0" / "last.pt", weights_only=True)
    assert after["epoch"] == 3 and not torch.equal(after["ema"]["heads.gender.weight"], ema["heads.gender.weight"])


@pytest.mark.slow
def test_clip_grad_bounds_every_step(demo_data, tmp_path, capsys):
    # SGD without momentum or decay: each step moves the weights by lr x (clipped) gradient
    sgd = ["--optimizer", "sgd", "--weight-decay", "0", "--set", "momentum=0", "--lr", "1", "--epochs", "1"]
    clipped, _ = train(capsys, tmp_path, demo_data, "gender", *sgd, "--clip-grad", "1e-6", "--name", "clipped")
    still, _ = train(capsys, tmp_path, demo_data, "gender", *sgd[:-4], "--lr", "1e-12", "--epochs", "1",
                     "--name", "still")  # fmt: skip
    a, b = _params(clipped / "fold0" / "last.pt"), _params(still / "fold0" / "last.pt")
    steps = len(pd.read_csv(clipped / "fold0" / "oof.csv")) * 3  # an upper bound on the steps of one epoch
    moved = torch.sqrt(sum(((a[k] - b[k]) ** 2).sum() for k in a))
    assert 0 < moved <= 1e-6 * steps


# -- --exclude and --relabel -----------------------------------------------------------------------
def _cfg(demo_data, **kw):
    return config.Config({**config.defaults(), "data": str(demo_data), **kw})


def test_exclude_drops_training_rows_only_and_relabel_changes_both(demo_data, tmp_path):
    table = load_table(_cfg(demo_data))
    persons = sorted(table["person"].unique())
    (tmp_path / "ex.csv").write_text(f"person,stem\n{persons[0]},\n{persons[1]},mask1\n")
    fixed = table[table["person"] == persons[2]].iloc[0]
    new_gender = "female" if fixed["gender"] == 0 else "male"
    (tmp_path / "fix.csv").write_text(f"person,gender,age\n{persons[2]},{new_gender},75\n{persons[3]},,\n")
    t = load_table(_cfg(demo_data, exclude=str(tmp_path / "ex.csv"), relabel=str(tmp_path / "fix.csv")))
    assert t.loc[t["person"] == persons[0], "excluded"].all()  # a person row: all seven photos
    one = t[t["person"] == persons[1]]
    assert one.loc[one["stem"] == "mask1", "excluded"].all() and not one.loc[one["stem"] != "mask1", "excluded"].any()
    assert int(t["excluded"].sum()) == 8
    r = t[t["person"] == persons[2]]
    assert (r["gender"] == 1 - fixed["gender"]).all() and (r["age_years"] == 75).all() and (r["age"] == 2).all()
    assert (r["class"] == r["mask"] * 6 + r["gender"] * 3 + 2).all()
    blank = ["gender", "age"]  # a row with both blank keeps the folder's labels
    assert t.loc[t["person"] == persons[3], blank].equals(table.loc[table["person"] == persons[3], blank])
    # the engine: excluded rows never train, but validate; relabelled rows validate with the fix
    cfg = _cfg(demo_data, exclude=str(tmp_path / "ex.csv"), relabel=str(tmp_path / "fix.csv"), **_tiny())
    t["fold"] = np.where(t["person"].isin(persons[:3]), 0, 1)
    train_df = FoldTrainer(cfg, t, 1, tmp_path / "f", []).train_df  # persons[:3] train
    assert persons[0] not in set(train_df["person"])
    one = train_df[train_df["person"] == persons[1]]
    assert len(one) == 6 and "mask1" not in set(one["stem"])  # its other six photos train
    assert (train_df.loc[train_df["person"] == persons[2], "age"] == 2).all()
    val = FoldTrainer(cfg, t, 0, tmp_path / "f", []).val_df  # persons[:3] validate
    assert len(val[val["person"] == persons[0]]) == 7 and len(val[val["person"] == persons[1]]) == 7
    assert (val.loc[val["person"] == persons[2], "age"] == 2).all()


def _tiny() -> dict:
    return {
        "backbone": "test_resnet",
        "pretrained": False,
        "img_size": [96, 72],
        "batch_size": 16,
        "workers": 0,
        "cache": False,
    }


@pytest.mark.parametrize("flag,content,expected", [
    ("--exclude", "person,stem\nnobody,\n", "bad.csv: 1 person(s) not in the training set, e.g. nobody"),
    ("--exclude", "stem\nmask1\n", "bad.csv: missing column(s) person"),
    ("--exclude", "person\n" + "\n".join(f"{i:06d}" for i in range(1, 61)), "bad.csv: names all 420 training images"),
    ("--relabel", "person,gender,age\n000001,unknown,30\n", "bad.csv line 2: gender 'unknown' is not male/female/0/1"),
    ("--relabel", "person,gender,age\n000001,male,abc\n", "bad.csv line 2: age 'abc' is not a whole number"),
    ("--relabel", "person,gender,age\n000001,male,30\n000001,male,31\n", "person 000001 is listed twice"),
    ("--relabel", "person,gender,age\n999999,male,30\n", "bad.csv: 1 person(s) not in the training set, e.g. 999999"),
])  # fmt: skip
def test_bad_exclude_or_relabel_file_is_one_line(demo_data, tmp_path, capsys, flag, content, expected):
    (tmp_path / "bad.csv").write_text(content)
    code, _, err = run_cli(capsys, "train-gender", "--data", demo_data, flag, tmp_path / "bad.csv", "--out",
                           tmp_path / "runs", *TINY)  # fmt: skip
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


# -- the final fit -------------------------------------------------------------------------------
@pytest.mark.slow
def test_final_fit_trains_every_person_and_predicts(demo_data, tmp_path, capsys):
    (tmp_path / "ex.csv").write_text("person,stem\n000001,\n")
    run, out = train(capsys, tmp_path, demo_data, "joint", "--epochs", "2", "--fold", "none", "--ema", "0.9",
                     "--exclude", tmp_path / "ex.csv")  # fmt: skip
    metrics = json.loads((run / "fold-none" / "metrics.json").read_text())
    assert metrics["final_fit"] and metrics["weights"] == "ema" and metrics["best_epoch"] == 1
    best = torch.load(run / "fold-none" / "best.pt", weights_only=True)
    ema = torch.load(run / "fold-none" / "last.pt", weights_only=True)["ema"]
    assert all(torch.equal(best["model"][k], ema[k]) for k in ema)  # the EMA weights were saved as best.pt
    assert (run / "exclude.csv").read_text() == (tmp_path / "ex.csv").read_text()  # the run keeps the file
    assert not (run / "oof.csv").exists() and "final fit: 2 epochs on every person" in out
    code, _, _ = run_cli(capsys, "predict", run, "--data", demo_data, "--out", tmp_path / "p.csv")
    assert code == 0 and len(pd.read_csv(tmp_path / "p.csv")) == 20 * 7
    code, _, _ = run_cli(capsys, "submit", "--data", demo_data, "--joint", tmp_path / "p.csv", "--out",
                         tmp_path / "subs")  # fmt: skip
    assert code == 0
    code, _, err = run_cli(capsys, "score", run)
    assert code == 2 and "final fit (--fold none) validates nothing" in err
    code, _, err = run_cli(capsys, "train-joint", "--data", demo_data, "--fold", "none", "--patience", "2")
    assert code == 2 and "--patience stops on validation scores" in err


# -- the label audit -----------------------------------------------------------------------------
def plant_gender_flips(src, dst, index: list[int]) -> list[str]:
    """dst: a copy of the demo set where the persons at `index` carry the other gender (folder and CSV)."""
    shutil.copytree(src, dst)
    df = pd.read_csv(dst / "train" / "train.csv", dtype={"id": str, "age": str})
    for i in index:
        old = df.loc[i, "path"]
        df.loc[i, "gender"] = "female" if df.loc[i, "gender"] == "male" else "male"
        df.loc[i, "path"] = f"{df.loc[i, 'id']}_{df.loc[i, 'gender']}_{df.loc[i, 'race']}_{df.loc[i, 'age']}"
        (dst / "train" / "images" / old).rename(dst / "train" / "images" / df.loc[i, "path"])
    df.to_csv(dst / "train" / "train.csv", index=False)
    return df.loc[index, "id"].tolist()


@pytest.mark.slow
def test_audit_ranks_planted_gender_flips_first(demo_data, tmp_path, capsys):
    planted = plant_gender_flips(demo_data, tmp_path / "flipped", [2, 9, 16, 23, 40])
    # the audit model as a team would train it: fine-tuned from ImageNet (the last flags win over TINY's)
    run, _ = train(capsys, tmp_path, tmp_path / "flipped", "gender", "--epochs", "4", "--folds", "3", "--fold", "all",
                   "--backbone", "tv/mobilenet_v2", "--pretrained", "--img-size", "64x48", "--lr", "1e-3")  # fmt: skip
    code, out, err = run_cli(capsys, "audit", run, "--heads", "gender", "--top", "12")
    assert code == 0, err
    sus = pd.read_csv(run / "audit" / "suspects.csv", dtype={"person": str}, keep_default_na=False)
    assert list(sus.columns[:6]) == ["rank", "unit", "person", "stem", "path", "head"]
    assert (sus["unit"] == "person").all() and sus["person"].is_unique and len(sus) == 60  # one unit a person
    assert sus["loss"].is_monotonic_decreasing
    top = set(sus.head(10)["person"])
    # 5 planted among 60 persons: a random ranking puts 3 or more in the top 10 with probability 0.03
    assert len(top & set(planted)) >= 3, (sorted(top), planted)
    assert (run / "audit" / "suspects.png").stat().st_size > 10_000
    # its top rows, as they are, are an --exclude file: those persons' photos no longer train
    sus.head(5).to_csv(tmp_path / "drop.csv", index=False)
    t = load_table(_cfg(tmp_path / "flipped", exclude=str(tmp_path / "drop.csv")))
    assert set(t.loc[t["excluded"], "person"]) == set(sus.head(5)["person"]) and int(t["excluded"].sum()) == 35


def test_audit_refuses_a_final_fit_and_a_foreign_head(tmp_path, capsys):
    run = tmp_path / "fin"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"fold": "none", "age_upper": 60}))
    code, _, err = run_cli(capsys, "audit", run)
    assert code == 2 and "a final fit (--fold none) validates nothing" in err
    code, _, err = run_cli(capsys, "audit", run, "--heads", "race")
    assert code == 2 and "--heads" in err


# -- mask restyling ----------------------------------------------------------------------------------
def _face_crop(masked: bool) -> np.ndarray:
    """A face as `maskcls crop` frames it (256x192): skin filling the frame, eyes at 40%, a blue mask
    over the nose, mouth and chin (rows 50-88%) when masked."""
    img = np.full((256, 192, 3), (90, 110, 90), np.uint8)
    cv2.ellipse(img, (96, 130), (80, 118), 0, 0, 360, (215, 170, 140), -1)
    for x in (66, 126):
        cv2.circle(img, (x, 100), 7, (40, 30, 30), -1)
    if masked:
        cv2.ellipse(img, (96, 180), (78, 52), 0, 0, 360, (60, 80, 170), -1)
    else:
        cv2.ellipse(img, (96, 175), (22, 7), 0, 0, 360, (170, 80, 80), -1)
    return img


def test_mask_style_repaints_only_the_mask_of_a_masked_face():
    masked, bare = _face_crop(True), _face_crop(False)
    aug = A.Compose([MaskStyle(p=1.0)], seed=0)
    blue = np.all(masked == (60, 80, 170), axis=2)
    near = cv2.dilate(blue.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)  # the feathered edge
    for _ in range(8):
        out = aug(image=masked, mask_on=True)["image"]
        diff = np.abs(out.astype(int) - masked).max(axis=2) > 0
        assert not diff[: int(0.4 * 256)].any()  # the eyes and above are never touched
        assert diff[blue].mean() > 0.9 and not diff[~near].any()  # the mask, and nothing away from it
    assert np.array_equal(aug(image=masked, mask_on=False)["image"], masked)  # the label says no mask: untouched
    assert np.array_equal(aug(image=masked)["image"], masked)  # no label given: untouched
    assert np.array_equal(aug(image=bare, mask_on=True)["image"], bare)  # skin at the mouth: nothing to restyle

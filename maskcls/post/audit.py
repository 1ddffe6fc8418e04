"""`maskcls audit RUN...`: which training labels look wrong, ranked, from out-of-fold predictions.

A person's gender and age are one label for all seven photos (the folder name), so they are
judged as one unit: the person's out-of-fold probabilities are averaged over their photos, and
the person is scored by the loss of the given label under that average (-log p). A person the
models, never trained on them, confidently place elsewhere ranks first. The mask label is per
photo (the file name), so mask suspects are single images (e.g. `normal` and `incorrect_mask`
swapped). Entropy (0 = certain, 1 = uniform) says how sure the models were: a high loss with a
low entropy is a confident disagreement, the likeliest label error; a high loss with a high
entropy is a hard face.

suspects.csv, best suspects first:
    rank, unit (person|image), person, stem (blank for a person), path (a photo to look at),
    head, given, predicted (class names), loss, entropy, p_given, images
`--exclude` takes it as it is (its top rows): a person row drops every photo of that person, an
image row that photo. `--relabel` wants a hand-checked person,gender,age file instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from maskcls import io
from maskcls.errors import MaskclsError, warn
from maskcls.heads import FACTORS, HEADS, marginals
from maskcls.runs import agree, make_dir, read_oof

PERSON_HEADS = ("gender", "age")  # labels of the person folder: one unit
IMAGE_HEADS = ("mask",)  # labels of the file name: one image
COLUMNS = ["rank", "unit", "person", "stem", "path", "head", "given", "predicted", "loss", "entropy", "p_given",
           "images"]  # fmt: skip


def oof_probs(runs: list[Path]) -> tuple[pd.DataFrame, dict[str, np.ndarray], int]:
    """The rows every run predicted out of fold, and each factor head's probabilities (averaged over
    the runs that have it; an 18-way head gives its marginals). Also the runs' age threshold."""
    frames, probs, cfgs = [], {}, {}
    for run in runs:
        oof, cfgs[str(run)] = read_oof(run, ("path", "person", "mask", "gender", "age"))
        frames.append(oof.sort_values("path").reset_index(drop=True))
    age_upper = agree(cfgs)
    common = set.intersection(*(set(f["path"]) for f in frames))
    if not common:
        raise MaskclsError("the runs' oof.csv share no image: trained on other data?")
    frames = [f[f["path"].isin(common)].reset_index(drop=True) for f in frames]
    for f in frames:
        have = {h: f[HEADS[h].columns()].to_numpy() for h in FACTORS if f"{h}_0" in f}
        if not have and "class_0" in f:
            have = marginals(f[HEADS["class"].columns()].to_numpy())
        for h, p in have.items():
            probs.setdefault(h, []).append(p)
    probs = {h: np.mean(ps, axis=0) for h, ps in probs.items()}
    if not probs:
        raise MaskclsError(f"{runs[0]}: oof.csv has no mask, gender or age probabilities")
    table = frames[0][["path", "person", "mask", "gender", "age"]].copy()
    table["person"] = table["person"].astype(str)
    table["stem"] = table["path"].map(lambda p: Path(p).stem)
    return table, probs, age_upper


def entropy(p: np.ndarray) -> np.ndarray:
    """Normalised entropy per row: 0 certain .. 1 uniform."""
    p = np.clip(p, 1e-12, 1)
    return -(p * np.log(p)).sum(1) / np.log(p.shape[1])


def audit(runs: list[Path], heads: tuple[str, ...] | None = None) -> tuple[pd.DataFrame, dict]:
    """suspects (all units, best suspects first) and coverage facts."""
    table, probs, age_upper = oof_probs(runs)
    heads = tuple(h for h in (heads or FACTORS) if h in probs)
    if not heads:
        raise MaskclsError(f"the runs predict none of the heads asked for (they have {', '.join(probs)})")
    rows = []
    for h in heads:
        names = HEADS[h].classes(age_upper)
        given, p = table[h].to_numpy(), probs[h]
        if h in PERSON_HEADS:  # one unit per person: the mean over their photos
            df = pd.DataFrame(p, columns=range(p.shape[1])).assign(person=table["person"], given=given)
            if (df.groupby("person")["given"].nunique() > 1).any():
                raise MaskclsError(f"{runs[0]}: a person has two {h} labels in oof.csv; not a contest-layout run")
            mean = df.groupby("person", sort=True)[list(range(p.shape[1]))].mean()
            # the photo to look at: the bare face (`normal`) where there is one
            by = table.assign(k=table["stem"] != "normal").sort_values(["person", "k"], kind="stable")
            by = by.groupby("person", sort=True)
            unit = pd.DataFrame({"unit": "person", "person": mean.index, "stem": "", "path": by["path"].first(),
                                 "given_k": by[h].first(), "images": by.size()}).reset_index(drop=True)  # fmt: skip
            pm = mean.to_numpy()
        else:
            unit = pd.DataFrame({"unit": "image", "person": table["person"], "stem": table["stem"],
                                 "path": table["path"], "given_k": given, "images": 1})  # fmt: skip
            pm = p
        p_given = pm[np.arange(len(pm)), unit["given_k"].to_numpy()]
        unit["head"] = h
        unit["given"] = [names[k] for k in unit["given_k"]]
        unit["predicted"] = [names[k] for k in pm.argmax(1)]
        unit["loss"] = -np.log(np.clip(p_given, 1e-12, 1))
        unit["entropy"] = entropy(pm)
        unit["p_given"] = p_given
        rows.append(unit.drop(columns="given_k"))
    out = pd.concat(rows, ignore_index=True).sort_values(["loss", "entropy"], ascending=[False, True], kind="stable")
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    facts = {"persons": int(table["person"].nunique()), "images": len(table), "heads": list(heads),
             "age_upper": age_upper}  # fmt: skip
    return out[COLUMNS].reset_index(drop=True), facts


def _photo(path: str):
    """The photo an oof.csv row names, RGB, or None: only regular files are opened (a FIFO would block)."""
    from maskcls.data.dataset import read_image

    try:
        return read_image(path)
    except MaskclsError:
        return None


def write_audit(suspects: pd.DataFrame, facts: dict, out: Path, top: int, console: Console | None = None) -> None:
    """suspects.csv, suspects.png (the top `top`) and a table of the first rows."""
    from maskcls.plots import plot_suspects

    console = console or Console()
    out = Path(out)
    make_dir(out, "--out")
    io.write_csv(out / "suspects.csv", suspects.round({"loss": 4, "entropy": 4, "p_given": 4}))
    shown = suspects.head(top)
    images = [_photo(p) for p in shown["path"]]
    missing = [p for p, img in zip(shown["path"], images, strict=True) if img is None]
    if missing:
        warn(f"{len(missing)} of the top {len(shown)} photos could not be drawn (moved, not a regular file, or "
             f"not an image; paths are as training saw them), e.g. {missing[0]}")  # fmt: skip
    plot_suspects(shown, images, out / "suspects.png")
    t = Table(title=f"audit: {facts['persons']} persons, {facts['images']} images out of fold; top suspects")
    for c in ("rank", "unit", "person", "stem", "head", "given", "predicted", "loss", "entropy"):
        t.add_column(c, justify="right" if c in ("rank", "loss", "entropy") else "left")
    for r in suspects.head(min(top, 15)).itertuples():
        t.add_row(str(r.rank), r.unit, r.person, r.stem, r.head, r.given, r.predicted, f"{r.loss:.2f}",
                  f"{r.entropy:.2f}")  # fmt: skip
    console.print(t)
    console.print(f"wrote {out / 'suspects.csv'} ({len(suspects)} rows) and {out / 'suspects.png'} (top {top})")

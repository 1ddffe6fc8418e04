"""The training table: the scanned train index plus rows from elsewhere — pseudo-labelled eval
images (`extra`) and external faces of known age and gender (`external`, data/external.py).

Those rows train but never validate: they carry `train_only=True`, and the trainer gives them
fold -1. `balance` is the label the class-balanced sampler draws by (the 18-class label; for
external faces, whose mask is unknown, their own gender x age groups).

Two hand-made files edit the contest's own rows (`maskcls audit` suggests what to put in them):
  --relabel FILE   person,gender,age: corrected labels (either may be blank = keep). They replace
                   the folder's labels for training AND validation: a label a person checked by
                   hand is the better truth to score against (scores then differ from unrelabelled
                   runs on those persons; the run keeps a copy of the file, and says how many changed).
  --exclude FILE   person[,stem or path]: images (or, with no stem, whole persons) that do not
                   train. They still validate with their labels, like --drop-ages, so runs with and
                   without an exclusion score on the same images. Marked `excluded`; the trainer drops them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console

from maskcls import labels
from maskcls.data.external import frame_external, scan_external
from maskcls.data.index import scan_train
from maskcls.errors import MaskclsError
from maskcls.heads import check_labels
from maskcls.io import read_csv

PSEUDO_COLUMNS = ["ImageID", "path", "mask", "gender", "age", "class", "confidence", "age_upper"]


def load_table(cfg, console=None) -> pd.DataFrame:
    """Train index (cfg.data) plus cfg.extra's pseudo rows and cfg.external's faces (re-framed into cfg.out)."""
    train = scan_train(cfg.data, cfg.age_upper).table.assign(pseudo=False, external=False)
    if cfg.relabel:
        train = relabel(train, load_relabel(cfg.relabel), cfg.age_upper, cfg.relabel)
    train["excluded"] = excluded(train, cfg.exclude) if cfg.exclude else False
    parts = [train]
    if cfg.extra:
        parts.append(load_pseudo(cfg.extra, cfg.age_upper).assign(pseudo=True, external=False))
    if cfg.external:
        if cfg.task == "mask":
            raise MaskclsError("--external faces teach age and gender; train-mask has neither head")
        ext = scan_external(cfg.external, cfg.age_upper)
        parts.append(frame_external(ext, cfg.data, cfg.out, console or Console()).assign(pseudo=False, external=True))
    table = pd.concat(parts, ignore_index=True)
    table["train_only"] = table["pseudo"] | table["external"]
    table["excluded"] = table["excluded"].fillna(False).astype(bool)
    table["balance"] = table["balance"].fillna(table["class"]).astype(int) if "balance" in table else table["class"]
    return table


def check_policy(cfg, table: pd.DataFrame, console: Console) -> None:
    """Say what each data option did to the table, and refuse what cannot have been meant."""
    if cfg.extra:
        console.print(f"pseudo-labelled rows from {cfg.extra}: {int(table['pseudo'].sum())} (train only)")
    if cfg.external:
        n = int(table["external"].sum())
        console.print(f"external faces from {cfg.external}: {n} (train only; age and gender, never mask)")
    if cfg.relabel:
        console.print(f"--relabel {cfg.relabel}: labels of those persons replaced, for training and validation")
    if cfg.exclude:
        n = int(table["excluded"].sum())
        if n == int((~table["train_only"]).sum()):  # e.g. a whole suspects.csv: its top rows were meant
            raise MaskclsError(f"--exclude {cfg.exclude}: names all {n} training images; pass only the rows to drop "
                               f"(e.g. the top ones: head -n 31 suspects.csv > drop.csv)")  # fmt: skip
        console.print(f"--exclude {cfg.exclude}: {n} images train in no fold (they still validate)")
    if cfg.drop_ages:
        ages = labels.parse_ages(cfg.drop_ages)
        n = int((table["age_years"].isin(ages) & ~table["train_only"]).sum())
        console.print(f"--drop-ages {cfg.drop_ages}: ages {', '.join(map(str, sorted(ages)))}: {n} images train in no "
                      "fold (they still validate)")  # fmt: skip
    n_persons = table.loc[~table["train_only"], "person"].nunique()
    if cfg.folds > n_persons:
        raise MaskclsError(f"--folds {cfg.folds} is more than the {n_persons} persons in {cfg.data}")


def drop_ages(table: pd.DataFrame, ages: set[int]) -> pd.DataFrame:
    """The rows whose age in years is not in `ages` (rows of unknown age, -1, stay)."""
    return table[~table["age_years"].isin(ages)] if ages else table


def fold_rows(table: pd.DataFrame, fold: int | str, final: bool, drop: set[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, validation rows) of one fold; the final fit trains on every row, validates none.

    --drop-ages (`drop`) and --exclude remove training images only; validation keeps every image, so
    scores of runs with and without them compare on the same persons (--relabel changes both).
    """
    train = table if final else table[table["fold"] != fold]
    train = drop_ages(train[~train["excluded"]], drop).reset_index(drop=True)
    val = table.iloc[:0] if final else table[(table["fold"] == fold) & ~table["train_only"]]
    if train.empty or (val.empty and not final):
        raise MaskclsError(f"fold {fold} leaves an empty train or validation set")
    return train, val.reset_index(drop=True)


def load_relabel(path: str | Path) -> pd.DataFrame:
    """person, gender (male/female or 0/1; blank = keep), age in years (blank = keep)."""
    path = Path(path)
    df = read_csv(path, ["person", "gender", "age"], dtype=str, keep_default_na=False)
    for i, r in df.iterrows():
        where = f"{path} line {i + 2}"
        g, a = r["gender"].strip().lower(), r["age"].strip()
        if g and g not in ("male", "female", "0", "1"):
            raise MaskclsError(f"{where}: gender {r['gender']!r} is not male/female/0/1")
        if a and not (a.isascii() and a.isdigit() and int(a) <= labels.MAX_AGE):  # "²".isdigit() is True
            raise MaskclsError(f"{where}: age {r['age']!r} is not a whole number of years (0..120)")
    if df["person"].duplicated().any():
        raise MaskclsError(f"{path}: person {df.loc[df['person'].duplicated(), 'person'].iloc[0]} is listed twice")
    return df


def relabel(table: pd.DataFrame, fixes: pd.DataFrame, age_upper: int, source: str | Path = "--relabel") -> pd.DataFrame:
    """The table with each listed person's gender and/or age replaced (all of their images)."""
    unknown = sorted(set(fixes["person"]) - set(table["person"]))
    if unknown:
        raise MaskclsError(f"{source}: {len(unknown)} person(s) not in the training set, e.g. {unknown[0]}")
    out = table.copy()
    for _, r in fixes.iterrows():
        rows = out["person"] == r["person"]
        g, a = r["gender"].strip().lower(), r["age"].strip()
        if g:
            code = int(g) if g.isdigit() else labels.gender_code(g)
            out.loc[rows, "gender"], out.loc[rows, "gender_name"] = code, labels.GENDER_NAMES[code]
        if a:
            out.loc[rows, "age_years"], out.loc[rows, "age"] = int(a), labels.age_group(int(a), age_upper)
    out["class"] = labels.encode(out["mask"], out["gender"], out["age"])
    return out


def excluded(table: pd.DataFrame, path: str | Path) -> pd.Series:
    """Which rows an exclude file names: person + stem (or the stem of `path`) = one image; person alone = all."""
    path = Path(path)
    df = read_csv(path, ["person"], dtype=str, keep_default_na=False)
    unknown = sorted(set(df["person"]) - set(table["person"]))
    if unknown:
        raise MaskclsError(f"{path}: {len(unknown)} person(s) not in the training set, e.g. {unknown[0]}")
    if "stem" not in df:  # suspects.csv and the like name the image by its path
        df["stem"] = df["path"].map(lambda p: Path(p).stem if p else "") if "path" in df else ""
    whole = set(df.loc[df["stem"] == "", "person"])
    images = set(zip(df.loc[df["stem"] != "", "person"], df.loc[df["stem"] != "", "stem"], strict=True))
    keys = pd.Series(list(zip(table["person"], table["stem"], strict=True)), index=table.index)
    return table["person"].isin(whole) | keys.isin(images)


def load_pseudo(path: str | Path, age_upper: int) -> pd.DataFrame:
    """Pseudo rows shaped like the train index (person = one group per image, fold assigned later)."""
    path = Path(path)
    df = read_csv(path, PSEUDO_COLUMNS, dtype={"ImageID": str})
    check_labels(df, path)  # they index the heads' classes: out of range is one line, not an IndexError
    if len(df) and (df["age_upper"] != age_upper).any():
        raise MaskclsError(f"{path}: made with age threshold {df['age_upper'].iloc[0]}, training uses {age_upper}")
    # Older files hold paths relative to where they were made: try the working folder, then the CSV's.
    df["path"] = [p if Path(p).is_file() else str(path.parent / p) for p in df["path"]]
    missing = [p for p in df["path"] if not Path(p).is_file()]
    if missing:
        raise MaskclsError(f"{path}: image {missing[0]} does not exist ({len(missing)} missing)")
    return pd.DataFrame({
        "person": "pseudo-" + df["ImageID"], "gender_name": df["gender"].map(dict(enumerate(labels.GENDER_NAMES))),
        "race": "", "age_years": -1, "stem": "pseudo", "path": df["path"],
        "mask": df["mask"], "gender": df["gender"], "age": df["age"], "class": df["class"],
    })  # fmt: skip

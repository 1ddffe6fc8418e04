"""The leaderboard CSV: eval/info.csv with ans = mask*6 + gender*3 + age, checked before it is written."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from maskcls import io, labels
from maskcls.data.index import check_image_id
from maskcls.engine.metrics import head_metrics
from maskcls.errors import MaskclsError
from maskcls.heads import FACTORS, HEADS, class_names, predict_classes
from maskcls.io import read_csv
from maskcls.post.probs import align, heads_of, read_probs, shared_age_upper, task_probs
from maskcls.runs import read_oof


def combine(sources: dict[str, Path], image_ids: pd.Series, reference: str,
            age_upper: int | None = None) -> tuple[dict[str, np.ndarray], int]:  # fmt: skip
    """Per-task probabilities aligned to image_ids from --mask/--gender/--age or --joint files, and the
    age threshold they were made with (what the files record; else age_upper; else the default)."""
    both = [t for t in FACTORS if t in sources]
    if "joint" in sources and both:
        raise MaskclsError(
            f"--joint and --{both[0]} both give {both[0]} predictions: pass --joint alone, or per-task files "
            f"only (a joint file works there too: --mask J --gender J --age A)"
        )
    probs, frames = {}, {}
    for task, path in sources.items():
        df = frames[str(path)] = align(read_probs(path), image_ids, str(path), reference)
        if task == "joint":
            if "class" in heads_of(df):  # an 18-way head: keep its joint argmax, not the marginals'
                probs["class"] = task_probs(df, "class", str(path))
            for t in FACTORS:
                probs.setdefault(t, task_probs(df, t, str(path)))
        else:
            probs[task] = task_probs(df, task, str(path))
    missing = [t for t in FACTORS if t not in probs]
    if missing:
        raise MaskclsError(f"no predictions for {', '.join(missing)}: pass --{missing[0]} FILE or --joint FILE")
    of_age = {str(p) for p in age_sources(sources)}
    upper = shared_age_upper({p: df for p, df in frames.items() if p in of_age}, age_upper)
    return probs, upper if upper is not None else labels.DEFAULT_AGE_UPPER


def age_sources(sources: dict[str, Path]) -> list[Path]:
    """The files the age predictions come from: --age, else --joint (a --mask file's age_upper means nothing)."""
    return [sources[t] for t in ("age", "joint") if t in sources]


def submission_name(sources: dict[str, Path]) -> str:
    h = hashlib.sha1()
    for task, path in sorted(sources.items()):
        h.update(task.encode())
        h.update(Path(path).read_bytes())
    return f"submission-{time.strftime('%Y%m%d-%H%M%S')}-{h.hexdigest()[:8]}.csv"


def validate(sub: pd.DataFrame, info: pd.DataFrame) -> None:
    if len(sub) != len(info) or not sub["ImageID"].equals(info["ImageID"]):
        raise MaskclsError("submission rows do not match eval/info.csv one to one")
    if not sub["ans"].between(0, labels.NUM_CLASSES - 1).all():
        raise MaskclsError("submission has ans outside 0..17")


def read_answers(answers_path: Path, image_ids: pd.Series) -> pd.DataFrame:
    """An answer key (ImageID, ans) aligned to image_ids; checked before anything is written."""
    key = read_csv(answers_path, ["ImageID", "ans"], dtype={"ImageID": str})
    ans = pd.to_numeric(key["ans"], errors="coerce")
    bad = ans.isna() | (ans != ans.round()) | ~ans.between(0, labels.NUM_CLASSES - 1)
    if bad.any():
        i = int(bad.to_numpy().argmax())
        given = str(key["ans"].iloc[i])
        raise MaskclsError(f"{answers_path}: row {i + 2} ({key['ImageID'].iloc[i]}): ans {given!r} is not a class "
                           f"0..{labels.NUM_CLASSES - 1}")  # fmt: skip
    key["ans"] = ans.astype(np.int64)
    return align(key, image_ids, str(answers_path), "eval/info.csv")


def score(sub: pd.DataFrame, answers: Path | pd.DataFrame) -> dict:
    """Macro-F1 and accuracy against an answer key (ImageID, ans): 18 classes and per task."""
    key = answers if isinstance(answers, pd.DataFrame) else read_answers(answers, sub["ImageID"])
    y, p = key["ans"].to_numpy(), sub["ans"].to_numpy()
    out = {"class": head_metrics(y, p, labels.NUM_CLASSES)}
    ty, tp = labels.decode(y), labels.decode(p)
    for i, task in enumerate(FACTORS):
        out[task] = head_metrics(ty[i], tp[i], HEADS[task].size())
    return out


def submit(
    sources: dict[str, Path],
    data: Path,
    out_dir: Path,
    answers: Path | None = None,
    console: Console | None = None,
    age_upper: int | None = None,
) -> tuple[Path, dict | None]:
    """Write the submission CSV. The age threshold (recorded by the prediction files, else age_upper)
    only names the classes in the printed table: ans is the same number at any threshold."""
    console = console or Console()
    io.check_apart(out_dir, "--out", {"--data": data})  # it writes a new file there: the inputs beside it stay
    io.clean_stale_temps(out_dir)  # hidden temp files of a submit that was killed while writing
    info_path = Path(data) / "eval" / "info.csv"
    info = read_csv(info_path, ["ImageID", "ans"], dtype={"ImageID": str})
    for i, name in enumerate(info["ImageID"]):  # the same rule as crop and predict: plain file names only
        check_image_id(name, info_path, i + 2)
    probs, age_upper = combine(sources, info["ImageID"], str(info_path), age_upper)
    key = read_answers(answers, info["ImageID"]) if answers is not None else None
    sub = info[["ImageID"]].copy()
    sub["ans"] = predict_classes(probs).astype(int)
    validate(sub, info)
    path = io.write_csv(Path(out_dir) / submission_name(sources), sub)

    counts = sub["ans"].value_counts().reindex(range(labels.NUM_CLASSES), fill_value=0)
    t = Table(title=f"predicted classes ({len(sub)} images)")
    t.add_column("class", justify="right")
    t.add_column("name")
    t.add_column("images", justify="right")
    names = class_names(age_upper)
    for c, n in counts.items():
        t.add_row(str(c), names[c], str(n))
    console.print(t)
    console.print(f"wrote {path}")
    metrics = None
    if answers is not None:
        metrics = score(sub, key)
        report(metrics, key["ans"].to_numpy(), age_upper, path.with_name(path.stem + "-f1.png"), console,
               f"{path.name} vs {Path(answers).name}")  # fmt: skip
    return path, metrics


def report(metrics: dict, y: np.ndarray, age_upper: int, png: Path, console: Console, title: str) -> None:
    """The per-class F1 table (the 18 classes: support, F1) and its bar chart, then the headline numbers."""
    from maskcls.plots import plot_per_class_f1

    names, support = class_names(age_upper), np.bincount(y, minlength=labels.NUM_CLASSES)
    t = Table(title=f"per-class F1 ({title})")
    for c in ("class", "name", "true images", "F1"):
        t.add_column(c, justify="left" if c == "name" else "right")
    for c, f1 in enumerate(metrics["class"]["per_class_f1"]):
        shown = f"[red]{f1:.3f}[/]" if f1 < metrics["class"]["f1"] else f"{f1:.3f}"  # red: below the macro-F1
        t.add_row(str(c), names[c], str(support[c]), shown)
    console.print(t)
    plot_per_class_f1(metrics["class"]["per_class_f1"], names, png, f"per-class F1: {title}")
    console.print(
        f"local score: macro-F1 {metrics['class']['f1']:.4f}  accuracy {metrics['class']['acc']:.4f}  "
        + "  ".join(f"{t} F1 {metrics[t]['f1']:.4f}" for t in FACTORS)
        + f"\nwrote {png}"
    )


def score_run(run_dir: Path, console: Console | None = None) -> dict:
    """Score a run's out-of-fold rows like a submission: 18-class and per-head F1, table and RUN/score-f1.png."""
    console = console or Console()
    run_dir = Path(run_dir)
    oof, cfg = read_oof(run_dir)
    probs = {h: oof[HEADS[h].columns()].to_numpy() for h in HEADS if f"{h}_0" in oof}
    if not ("class" in probs or set(FACTORS) <= set(probs)):
        raise MaskclsError(f"{run_dir}: a {', '.join(probs)} run; the 18 classes need mask, gender and age (or flat18)")
    sub = pd.DataFrame({"ImageID": oof["path"], "ans": predict_classes(probs)})
    key = pd.DataFrame({"ImageID": oof["path"], "ans": oof["class"]})
    metrics = score(sub, key)
    report(metrics, key["ans"].to_numpy(), cfg.get("age_upper", labels.DEFAULT_AGE_UPPER),
           run_dir / "score-f1.png", console, f"{run_dir.name} out-of-fold, {len(oof)} images")  # fmt: skip
    return metrics

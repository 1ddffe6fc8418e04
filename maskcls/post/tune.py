"""Tuned decisions on out-of-fold predictions: age cut-offs and per-class logit biases.

`tune(runs)` reads the runs' oof.csv (joined on the image path, so a mask, a gender and an age run
tune together), and chooses what maximises the out-of-fold 18-class macro-F1 (a single head's
macro-F1 when the runs do not cover all three heads):
  * for an age head that predicts years (ordinal, regression): the cut-offs, i.e. the first age
    of the middle and of the oldest group, from P(age >= a) (`age_ge_<a>` columns);
  * for every head: an additive bias per class on the log-probabilities (macro-F1 rewards the
    rare classes, which an argmax under-predicts).
Each run gets RUN/tuned.json with its heads' choices; `predict` applies them unless --no-tuned.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import f1_score

from maskcls import io, labels
from maskcls.engine.kinds import AGES, groups_from_cumulative
from maskcls.errors import MaskclsError
from maskcls.heads import FACTORS, HEADS, predict_classes
from maskcls.runs import Run, agree, read_oof

BIASES = np.round(np.arange(-2.0, 2.01, 0.25), 2)  # candidate biases (log-probability units)
ROUNDS = 2  # coordinate-ascent sweeps over every class of every head


def group_probs(cum: np.ndarray, cutoffs) -> np.ndarray:
    """The kinds' own rule (engine/kinds.py), on out-of-fold P(age >= a) columns."""
    return groups_from_cumulative(torch.from_numpy(cum), cutoffs).numpy()


def adjusted(p: np.ndarray, bias) -> np.ndarray:
    """Probabilities with the bias added to their logs, renormalised: argmax = argmax(log p + bias)."""
    z = np.log(np.clip(p, 1e-12, None)) + np.asarray(bias)
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def _score(probs: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> float:
    if "class" in probs or set(FACTORS) <= set(probs):
        pred, truth = predict_classes(probs), y["class"]
    else:
        [head] = probs
        pred, truth = probs[head].argmax(1), y[head]
    return float(f1_score(truth, pred, average="macro", labels=np.unique(truth), zero_division=0))


def _read_oof(run: Path) -> tuple[pd.DataFrame, dict]:
    return read_oof(run)


def tune(runs: list[Path]) -> dict:
    """Choices per run ({run: {head: {"bias": [...], "cutoffs": [c1, c2]?}}}) and the OOF scores."""
    frames, owner, cumulative = [], {}, {}
    agree({str(run): Run(run).config for run in runs})  # before anything else: one age threshold
    for run in runs:
        df, cfg = _read_oof(Path(run))
        heads = [h for h in HEADS if f"{h}_0" in df.columns and h not in owner]
        if not heads:
            raise MaskclsError(f"{run}/oof.csv: no head the other runs do not already give")
        for h in heads:
            owner[h] = str(run)
        ge = [f"age_ge_{a}" for a in AGES.tolist()] if f"age_ge_{int(AGES[0])}" in df.columns else []
        if "age" in heads and ge:
            cumulative = {"cols": ge, "upper": cfg["age_upper"]}
        keep = ["path", *[c for h in heads for c in HEADS[h].columns()], *(ge if "age" in heads else [])]
        truth = [c for c in ("mask", "gender", "age", "class") if c in df.columns and not frames]
        frames.append(df[[*dict.fromkeys(truth + keep)]])
    oof = frames[0]
    for f in frames[1:]:
        oof = oof.merge(f, on="path", how="inner")
    if oof.empty:
        raise MaskclsError("the runs' oof.csv share no image: trained on other data?")
    y = {h: oof[h].to_numpy() for h in ("mask", "gender", "age", "class") if h in oof}
    probs = {h: oof[HEADS[h].columns()].to_numpy(np.float64) for h in owner}
    before = _score(probs, y)

    cutoffs = None
    if cumulative:  # the age cut-offs first: they decide the age probabilities the biases then shift
        cum = oof[cumulative["cols"]].to_numpy(np.float64)
        first, last, upper = int(AGES[0]), int(AGES[-1]), cumulative["upper"]
        best = (-1.0, None)
        for c1 in range(max(first + 1, labels.AGE_LOWER - 5), labels.AGE_LOWER + 6):
            for c2 in range(max(c1 + 1, upper - 8), min(last, upper + 5) + 1):
                s = _score({**probs, "age": group_probs(cum, (c1, c2))}, y)
                best = max(best, (s, (c1, c2)), key=lambda t: t[0])
        cutoffs = best[1]
        probs["age"] = group_probs(cum, cutoffs)

    bias = {h: np.zeros(p.shape[1]) for h, p in probs.items()}
    score = _score(probs, y)
    for _ in range(ROUNDS):
        for h in probs:
            for k in range(len(bias[h])):
                for b in BIASES:
                    trial = bias[h].copy()
                    trial[k] = b
                    s = _score({**probs, h: adjusted(probs[h], trial)}, y)
                    if s > score + 1e-9:
                        score, bias[h] = s, trial
    choices: dict[str, dict] = {str(r): {} for r in runs}
    for h, run in owner.items():
        choices[run][h] = {"bias": bias[h].round(2).tolist()}
        if h == "age" and cutoffs is not None:
            choices[run][h]["cutoffs"] = list(cutoffs)
    return {"choices": choices, "oof_f1_before": before, "oof_f1_after": score, "images": len(oof),
            "scored_on": "18 classes" if len(probs) > 1 or "class" in probs else next(iter(probs))}  # fmt: skip


def write_tuned(result: dict) -> list[Path]:
    written = []
    for run, heads in result["choices"].items():
        record = {"heads": heads, "oof_f1_before": result["oof_f1_before"], "oof_f1_after": result["oof_f1_after"],
                  "scored_on": result["scored_on"], "tuned_with": sorted(result["choices"])}  # fmt: skip
        written.append(io.write_json(Run(run).tuned_path, record))
    return written


def load_tuned(path: Path | None) -> dict:
    """{head: {"bias": [...], "cutoffs": [...]}} of a run's tuned.json, or {} when it has none."""
    if path is None or not path.is_file():
        return {}
    try:
        heads = json.loads(path.read_text())["heads"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise MaskclsError(f"{path}: not a tune-thresholds file (rerun maskcls tune-thresholds)") from None
    if not isinstance(heads, dict):
        raise MaskclsError(f"{path}: 'heads' is not a mapping of head names (rerun maskcls tune-thresholds)")
    for head, choice in heads.items():
        check_choice(path, head, choice)
    return heads


BIAS_LIMIT = 20.0  # tune chooses biases in [-2, 2]; beyond this a bias is no tuning but an override


def check_choice(path: Path, head: str, choice) -> None:
    """One head's entry of tuned.json: a finite bias per class of the head, cut-offs rising within AGES."""
    where = f"{path}: head {head!r}"
    if head not in HEADS or not isinstance(choice, dict) or "bias" not in choice:
        raise MaskclsError(f"{where}: not a head with a 'bias' list (rerun maskcls tune-thresholds)")
    bias, n = choice["bias"], HEADS[head].size()
    if not (isinstance(bias, list) and len(bias) == n and all(isinstance(b, int | float) and not isinstance(b, bool)
                                                                for b in bias)):  # fmt: skip
        raise MaskclsError(f"{where}: 'bias' must be {n} numbers, one per class (got {str(bias)[:80]})")
    if not all(np.isfinite(b) and abs(b) <= BIAS_LIMIT for b in bias):
        raise MaskclsError(f"{where}: every bias must be finite and within ±{BIAS_LIMIT:g} (got {bias})")
    if "cutoffs" in choice:
        cut = choice["cutoffs"]
        lo, hi = int(AGES[0]) + 1, int(AGES[-1])
        if not (isinstance(cut, list) and len(cut) == 2 and all(isinstance(c, int) for c in cut)
                and lo <= cut[0] < cut[1] <= hi):  # fmt: skip
            raise MaskclsError(f"{where}: 'cutoffs' must be two whole ages rising within {lo}..{hi} (got {cut})")


def apply_tuned(probs: dict[str, np.ndarray], tuned: dict) -> dict[str, np.ndarray]:
    """Biases on the heads' probabilities (the cut-offs are applied when the kinds are built)."""
    return {h: adjusted(p, tuned[h]["bias"]) if h in tuned and h in HEADS else p for h, p in probs.items()}

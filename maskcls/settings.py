"""Every training setting, declared once: its default, what it means, why that default, and its checks.

One `Setting` per key (as Ultralytics' defaults file reads `key: value  # (type) meaning`). What
reads it:
- `config.py` validates every layer against it (type, range, the registry or list of choices);
- `commands/train.py` builds the train commands' flags from it (help, panel, which tasks show it,
  the default each `--help` prints);
- `maskcls config show` lists the keys in this order, with each value's source;
- `--resume` lets through only the keys marked `resume`;
- the packaged `args.json` and the README's settings table are written from it
  (`python -m maskcls.settings --write`, `make settings`; a test fails when either is stale).

A new setting is one record here plus the code that reads it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskcls import labels
from maskcls.heads import TASKS

MODEL, DATA, OPTIM, RUN = "Model", "Data and sampling", "Optimisation", "Run"
IMG_SIDE = (16, 1024)  # the contest's photos are 512x384: a larger input only upsamples (and a huge cache)


@dataclass(frozen=True)
class Setting:
    key: str
    default: Any
    help: str  # what it does: the flag's --help and the README's meaning column
    why: str = ""  # why this default (README table)
    panel: str | None = None  # the flag's --help panel; None: no flag of its own (--set KEY=VALUE)
    range: tuple | None = None  # (low, high, low inclusive, high inclusive)
    choices: tuple | str | None = None  # the allowed values, or the name of the registry that holds them
    kind: str = ""  # for a None default: "path" or "text" (what a value must be, and the flag's type)
    only_for: tuple[str, ...] = ()  # the train commands that show the flag (empty: all four)
    resume: bool = False  # `--resume RUN` may change it (everything else is the run's own)
    check: Callable[[Any], Any] | None = field(default=None, repr=False)  # value -> value; ValueError = refused
    parse: Callable[[str], Any] | None = field(default=None, repr=False)  # the flag's text -> value
    set_by: str = ""  # who sets it when not a flag or --set (task: the command's name)

    @property
    def flag(self) -> str:
        return f"--{self.key.replace('_', '-')}"

    def how_to_set(self) -> str:
        """Its flag, or what sets it: `config show` and the README table say it the same way."""
        return self.set_by or (self.flag if self.panel is not None else f"--set {self.key}=...")

    def type_name(self) -> str:
        if self.default is None:
            return self.kind or "text"
        names = {bool: "bool", int: "int", float: "float", str: "text", list: "list", dict: "object"}
        return names[type(self.default)]


# -- checks and flag parsers (ValueError says what is wrong; config adds where it came from) ---------------
def img_size(value) -> list[int]:
    """One side or [H, W] -> [H, W], each side in IMG_SIDE."""
    if not isinstance(value, int | list | tuple) or isinstance(value, bool):
        raise ValueError(f"must be one number or H W (got {value!r})")
    value = [value, value] if isinstance(value, int) else list(value)
    value = value * 2 if len(value) == 1 else value
    lo, hi = IMG_SIDE
    if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi for v in value):
        raise ValueError(f"must be one number or H W, each in {lo}..{hi} (got {value})")
    return value


def parse_img_size(text: str) -> list[int]:
    """'224' -> [224, 224]; '256 192', '256x192', '256,192' -> [256, 192] (H, W)."""
    parts = re.split(r"\s*[x,]\s*|\s+", text.strip())  # "20x" has an empty second side: refused
    if not all(p.isascii() and p.isdigit() for p in parts):
        raise ValueError(f"expected one number or H W, got {text!r}")
    return img_size([int(p) for p in parts])


def fold(value):
    """A fold number, "all" (every fold) or "none" (the final fit: every person trains, nothing validates)."""
    if value not in ("all", "none") and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        raise ValueError(f"must be a fold number, 'all' or 'none' (got {value!r})")
    return value


def parse_fold(text: str):
    return fold(int(text) if text.isascii() and text.isdigit() else text)


def parse_folds(text: str) -> int:
    if text == "all":  # one spelling for "every fold": --fold all (--folds is how many there are)
        raise ValueError("is how many folds; to train every fold use --fold all")
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"expected a number, got {text!r}")
    return int(text)


def run_name(value):
    """A run name is one plain folder name: no path separators, no '..', not hidden."""
    if value is not None and (not isinstance(value, str) or not value or value in (".", "..")
                              or value.startswith(".") or any(c in value for c in "/\\\0")):  # fmt: skip
        raise ValueError(f"must be a plain folder name, not a path (got {value!r})")
    return value


def ages(value):
    if value is not None:
        if not isinstance(value, str | list):
            raise ValueError(f"must be text like 27-29,57-59 or a list (got {value!r})")
        labels.parse_ages(value)
    return value


def weights_of_heads(value: dict) -> dict:
    if any(not isinstance(w, int | float) or isinstance(w, bool) or w < 0 for w in value.values()):
        raise ValueError(f"must be numbers >= 0 (got {value})")
    return value


S = Setting
# fmt: off
SETTINGS: tuple[Setting, ...] = (
    S("task", "joint", "mask, gender, age or joint: which heads train (set by the command: train-TASK).",
      set_by="train-TASK", choices=tuple(t for t in TASKS if "/" not in t)),
    S("data", None, "Folder that holds train/ and eval/ in the contest layout. Required (not with --resume).",
      kind="path", panel=""),
    S("backbone", "tv/mobilenet_v2", "tv/NAME (a torchvision model) or a timm model name, e.g. resnet18, "
      "efficientnet_b4.", "ImageNet MobileNetV2 ships offline and beat from-scratch ResNet-18 by 0.16 macro-F1 "
      "at a third of the epochs (README, Quality).", panel=MODEL),
    S("pretrained", True, "Start from ImageNet weights, found offline first (--weights, the hub folder, weight "
      "packages), else the hub.",
      "every winning team fine-tunes; from scratch scored 0.329 vs 0.557 at 4 epochs (README).",
      panel=MODEL),
    S("weights", None, "Local weights file (torchvision/timm state dict, .safetensors or a maskcls checkpoint); "
      "wins over the search.", kind="path", panel=MODEL),
    S("weights_sha256", None, "SHA-256 of the weights file; every run records it, and a config that sets it "
      "refuses any other file.", kind="text"),
    S("img_size", [128, 96], "Input size [H, W] (one number or H W: '256 192', '256x192'); photos are 3:4, "
      "keep that aspect.", "192x144 scored the same at 2.4x the time on CPU (README, Quality).",
      panel=DATA, check=img_size, parse=parse_img_size),
    S("epochs", 12, "Epochs.", panel=OPTIM, range=(1, 10_000, True, True), resume=True,
      why="kept from the from-scratch recipe, unsupported over 4: 12 vs 4 epochs on 300 hidden persons +0.007 "
          "[-0.027, +0.046]; 8 below 4 at seeds 42-44 (fold 0). No interval clears zero either way, so it is not "
          "changed; the paired row `bench/quality.sh --rows epochs12` decides it."),
    S("batch_size", 32, "Batch size.", panel=OPTIM, range=(1, 65_536, True, True),
      why="the contest baseline's batch; not re-tuned. Under DDP it is the global batch."),
    S("lr", 0.001, "Peak learning rate (after warm-up).", panel=OPTIM, range=(0, 1000, False, True),
      why="AdamW fine-tuning rate; 3e-3 scored 0.537 vs 0.529 at seed 42: inside the spread."),
    S("optimizer", "adamw", "adam, adamw or sgd (with momentum).", panel=OPTIM, choices="optimizer",
      why="decoupled weight decay, the usual fine-tuning choice; no quality row compared optimizers."),
    S("weight_decay", 0.0001, "Weight decay (L2, or decoupled for adamw).", panel=OPTIM, range=(0, 1, True, True),
      why="light decay for fine-tuning; no quality row varied it."),
    S("decay_norm_bias", True, "false: no weight decay on biases, norm layers and the backbone's "
      "no_weight_decay() names (timm's recipe).",
      "false did not beat true by more than the seed spread (from scratch)."),
    S("momentum", 0.9, "SGD momentum (0: plain SGD, else Nesterov).", range=(0, 1, True, False)),
    S("scheduler", "cosine", "LR schedule after the linear warm-up: cosine, step (step_size, gamma), "
      "exponential (exp_gamma^epoch), none.", panel=OPTIM, choices="scheduler",
      why="cosine after one warm-up epoch, the usual fine-tuning schedule; no quality row compared schedules."),
    S("warmup_epochs", 1, "Epochs of linear LR warm-up.", range=(0, 10_000, True, True),
      why="one epoch keeps the new heads' first, large gradients away from the pretrained features."),
    S("step_size", 3, "scheduler step: epochs between decays.", range=(1, 10_000, True, True)),
    S("gamma", 0.5, "scheduler step: the factor at each decay.", range=(0, 1, False, True)),
    S("exp_gamma", 0.95, "scheduler exponential: the factor per epoch.", range=(0, 1, False, True)),
    S("loss", "ce", "ce, smooth (label smoothing), neighbor (age: smoothing only into adjacent groups), "
      "focal, f1 (soft macro-F1 + CE).", "the task presets choose: smooth for mask and gender, neighbor for "
      "age and joint.", panel=OPTIM, choices="loss"),
    S("label_smoothing", 0.1, "Smoothing epsilon for smooth and neighbor.", panel=OPTIM, range=(0, 1, True, False),
      why="the common 0.1; neighbor-only age smoothing beat uniform from scratch (0.386 vs 0.329)."),
    S("focal_gamma", 2.0, "loss focal: the focusing exponent.", range=(0, 10, True, True)),
    S("loss_weights", {"mask": 1.0, "gender": 1.0, "age": 1.0}, "train-joint: weight of each head's loss.",
      "the joint preset weighs age 1.5: it is the head that decides the leaderboard.", check=weights_of_heads),
    S("head", "multi", "train-joint: multi (3 heads) or flat18 (one 18-way head); on train-age, --head names "
      "the age head's kind (as --age-head).", "three heads share what mask, gender and age have in common; "
      "flat18 sees 18 rarer classes.", panel=MODEL, choices=("multi", "flat18"), only_for=("joint", "age")),
    S("age_head", "classify", "Age head: classify (3 groups), ordinal (CORN over ages 11..90) or regression "
      "(years, Huber loss); all give the 3 group probabilities.", panel=MODEL, choices="age_head",
      only_for=("joint", "age"),
      why="the simplest head; ordinal and regression are rows of the age ablation (README, Age)."),
    S("head_dropout", 0.0, "Dropout on the backbone's features before the heads (0 = off), e.g. 0.2.",
      "0.2 scored 0.564 vs 0.557 over seeds 42-44: inside the seed spread (README, Quality).", panel=MODEL,
      range=(0, 1, True, False)),
    S("age_gate", False, "train-joint: condition the age head on the gender head's embedding.",
      panel=MODEL, only_for=("joint",)),
    S("oversample", 0.5, "Class-balanced oversampling: 0 natural mix .. 1 every label equally likely.",
      "halfway: the rare >=60 group is seen more often without repeating its few persons too much; "
      "0 scored 0.550 vs 0.557 over seeds 42-44: inside the spread.",
      panel=DATA, range=(0, 1, True, True)),
    S("augment", "light", "Augmentation preset: none, light, medium, heavy, or masks (light + mask restyling); "
      "albumentations, on cached uint8 images.", panel=DATA, choices="augment",
      why="flips, small shifts and colour; no pretrained row varied it (mask restyling: a from-scratch row)."),
    S("mixup", 0.0, "MixUp alpha (0 = off).", panel=DATA, range=(0, 100, True, True)),
    S("cutmix", 0.0, "CutMix alpha, e.g. 1.0 (0 = off).", "half-image CutMix scored inside the seed spread "
      "(README, Quality).", panel=DATA, range=(0, 100, True, True)),
    S("cutmix_mode", "box", "box (a random box), halves (the partner's left or right half, as the contest's "
      "top entries) or halves-tb (also top/bottom).", panel=DATA, choices="cutmix_mode"),
    S("cutmix_partner", "any", "any (a random image of the batch) or rare (one of the batch's rarest age "
      "group, e.g. >=60).", panel=DATA, choices="cutmix_partner"),
    S("ema", 0.0, "EMA decay of the weights, e.g. 0.999 (0 = off); the better of EMA and raw weights is kept.",
      "EMA 0.999 gained +0.002 on the mean of three seeds: inside the spread.", panel=OPTIM,
      range=(0, 1, True, False)),
    S("clip_grad", 0.0, "Clip the gradient norm at this value, e.g. 1.0 (0 = off).", panel=OPTIM,
      range=(0, 1e6, True, True)),
    S("age_upper", labels.DEFAULT_AGE_UPPER, "First age of the oldest group: <30 / 30..UPPER-1 / >=UPPER "
      "(teams use 58-60).", panel=DATA, range=(31, 120, True, True),
      why="the contest's groups (<30, 30-59, >=60)."),
    S("folds", 5, "Number of folds K the persons are split into (--fold all trains them all).", panel=RUN,
      range=(2, 1000, True, True), parse=parse_folds,
      why="5 folds: 80 % of the persons train, each person validates once."),
    S("split_method", "sgkf", "sgkf (StratifiedGroupKFold) or apart (pandas-streaming, made reproducible).",
      choices="split_method",
      why="StratifiedGroupKFold: persons never straddle folds, classes stay balanced."),
    S("fold", 0, "Which fold validates (0..K-1); all: every fold; none: the final fit on every person "
      "(no validation; the last epoch's weights).", "one fold is the quick loop; scripts/pipeline.sh adds "
      "the final fit.", panel=RUN, check=fold, parse=parse_fold),
    S("folds_file", None, "Reuse a fold assignment CSV (person,fold), e.g. another run's folds.csv.", kind="path"),
    S("extra", None, "Pseudo-label CSV from `maskcls pseudo-label`: trains, never validates.", kind="path",
      panel=DATA),
    S("external", None, "Face photos of known age and gender (a UTKFace-named folder or a CSV path,age,gender): "
      "train the age and gender heads, never validate.", kind="path", panel=DATA,
      only_for=("joint", "gender", "age")),
    S("drop_ages", None, "Ages (in years) that do not train, e.g. 27-29,57-59 (noisy labels near the "
      "cut-offs); they still validate.", kind="text", panel=DATA, only_for=("joint", "age"), check=ages),
    S("exclude", None, "CSV person[,stem or path] of images (no stem: whole persons) that do not train, e.g. the "
      "top of `maskcls audit`'s suspects.csv; they still validate.", kind="path", panel=DATA),
    S("relabel", None, "CSV person,gender,age of hand-checked labels (blank = keep); used for training and "
      "validation.", kind="path", panel=DATA),
    S("seed", 42, "Fixes splits, sampling, augmentation and initialisation.", panel=RUN,
      range=(0, 2**32 - 1, True, True),
      why="any fixed value: the run is reproducible."),  # what numpy's and torch's generators take
    S("amp", True, "Mixed precision (CUDA only).", panel=OPTIM,
      why="the usual CUDA speed-up; ignored on CPU (not measured here: no GPU has run it yet)."),
    S("channels_last", True, "channels_last memory format (CUDA and CPU).", "1.67x MobileNetV2's training speed "
      "on 2 CPU cores."),
    S("sync_bn", False, "Under torchrun: SyncBatchNorm over the global batch.", panel=OPTIM),
    S("accum_steps", 1, "Gradient accumulation steps.", panel=OPTIM, range=(1, 1024, True, True)),
    S("patience", 0, "Early stopping after this many epochs without a better macro-F1 (0 = off).", panel=OPTIM,
      range=(0, 10_000, True, True),
      why="off: the best epoch's weights are kept anyway."),
    S("workers", -1, "DataLoader workers (-1 = automatic: 0 on a 2-core CPU box, up to 8 with CUDA).",
      panel=RUN, range=(-1, 256, True, True), resume=True,
      why="a cached image costs microseconds: on 2 cores the model needs both; with CUDA up to 8."),
    S("cache", True, "Decode each image once into a memory-mapped cache.", panel=RUN,
      why="a photo is decoded once, not every epoch (bench/loader.py)."),
    S("cache_dir", None, "Cache folder (default: OUT/cache, shared by runs).", kind="path", panel=RUN,
      resume=True),
    S("device", "auto", "auto, cpu, cuda or mps.", panel=RUN, choices=("auto", "cpu", "cuda", "mps"),
      resume=True,
      why="the GPU when there is one."),
    S("out", "runs", "Parent folder of run directories (auto-numbered).", kind="path", panel=RUN),
    S("name", None, "Run name (default TASK-BACKBONE).", kind="text", panel=RUN, check=run_name),
    S("wandb", False, "Log to Weights & Biases (offline without an API key; WANDB_MODE wins).", panel=RUN,
      resume=True),
    S("wandb_project", "maskcls", "The Weights & Biases project.", check=run_name),
)
# fmt: on
del S
BY_KEY = {s.key: s for s in SETTINGS}
# What `--resume RUN` may change: everything else is the run's own config (a resumed run is the
# same experiment). --epochs extends (or, before it ends, shortens) it; the LR schedule is then
# recomputed for the new length from the step reached.
RESUME_KEYS = tuple(s.key for s in SETTINGS if s.resume)


def defaults() -> dict:
    return {s.key: json.loads(json.dumps(s.default)) for s in SETTINGS}  # a fresh copy of every list and dict


def args_json() -> str:
    """The packaged args.json: every key and its default, in this file's order."""
    return json.dumps(defaults(), indent=2) + "\n"


def markdown_table() -> str:
    """The README's settings table."""
    rows = ["| key | default | flag | meaning | why this default |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        flag = f"`{s.how_to_set()}`"
        if s.only_for:
            flag += " (" + ", ".join(s.only_for) + ")"
        meaning = s.help.replace("|", "\\|")
        if isinstance(s.choices, tuple):
            meaning += " One of: " + ", ".join(s.choices) + "."
        elif s.choices:
            meaning += f" (registry `{s.choices}`)"
        rows.append(f"| `{s.key}` | `{json.dumps(s.default)}` | {flag} | {meaning} | {s.why.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


README_BEGIN = "<!-- settings table: generated by `make settings` from maskcls/settings.py -->"
README_END = "<!-- end of settings table -->"


def with_table(readme: str) -> str:
    """readme with the block between the markers replaced by today's table."""
    head, sep, rest = readme.partition(README_BEGIN)
    _, sep2, tail = rest.partition(README_END)
    if not sep or not sep2:
        raise ValueError("README.md lacks the settings table's markers")
    return f"{head}{README_BEGIN}\n{markdown_table()}{README_END}{tail}"


def main() -> None:  # python -m maskcls.settings --write [README]
    import sys

    args = sys.argv[1:]
    if args[:1] != ["--write"]:
        print(args_json(), end="")
        return
    from maskcls import io

    io.write_text(Path(__file__).with_name("defaults") / "args.json", args_json())
    readme = Path(args[1] if len(args) > 1 else "README.md")
    io.write_text(readme, with_table(readme.read_text()))


if __name__ == "__main__":
    main()

"""The shared data layer: one index, one split, one dataset for every task.

Importing the package fills the registries of augmentation presets and split methods (see
maskcls/registry.py).
"""

from maskcls.data import transforms  # noqa: F401  (fills the augment registry)
from maskcls.data.index import EvalIndex, TrainIndex, scan_eval, scan_train
from maskcls.data.splits import assign_folds, load_folds, save_folds

__all__ = ["TrainIndex", "EvalIndex", "scan_train", "scan_eval", "assign_folds", "save_folds", "load_folds"]

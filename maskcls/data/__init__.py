"""The shared data layer: one index, one split, one dataset for every task."""

from maskcls.data.index import EvalIndex, TrainIndex, scan_eval, scan_train
from maskcls.data.splits import assign_folds, load_folds, save_folds

__all__ = ["TrainIndex", "EvalIndex", "scan_train", "scan_eval", "assign_folds", "save_folds", "load_folds"]

"""Run a script unmodified and keep the arrays it first hands to scikit-learn's f1_score.

    python bench/anchor_spy.py OUT.npy SCRIPT [SCRIPT ARGS...]

The plain notebook (../shared/anchors/plain_finetune.py) prints only its scores; its first f1_score call
is (answer key, 18-class answers) in eval/info.csv order. Saved as a (2, N) array: truth, answers.
"""

import runpy
import sys

import numpy as np
import sklearn.metrics

out, script, *argv = sys.argv[1:]
calls = []
real = sklearn.metrics.f1_score


def spy(y_true, y_pred, *args, **kwargs):
    calls.append((np.asarray(y_true), np.asarray(y_pred)))
    return real(y_true, y_pred, *args, **kwargs)


sklearn.metrics.f1_score = spy  # the script's `from sklearn.metrics import f1_score` runs after this
sys.argv = [script, *argv]
runpy.run_path(script, run_name="__main__")
np.save(out, np.stack(calls[0]))

import numpy as np
import pytest
import torch

from maskcls.data.sampling import BalancedSampler, balanced_weights
from maskcls.engine.losses import neighbor_smoothing, uniform_smoothing

LABELS = np.array([0] * 900 + [1] * 90 + [2] * 10)


def _mix(strength, seed=0, epoch=0):
    s = BalancedSampler(LABELS, strength, seed=seed)
    s.set_epoch(epoch)
    return np.bincount(LABELS[list(s)], minlength=3) / len(LABELS)


def test_strength_zero_keeps_natural_mix_and_one_balances():
    assert np.allclose(_mix(0.0), [0.9, 0.09, 0.01], atol=0.03)
    assert np.allclose(_mix(1.0), [1 / 3] * 3, atol=0.05)
    half = _mix(0.5)
    assert 1 / 3 < half[0] < 0.9 and 0.01 < half[2] < 1 / 3


def test_sampler_is_deterministic_per_seed_and_epoch():
    a, b = BalancedSampler(LABELS, 0.5, seed=3), BalancedSampler(LABELS, 0.5, seed=3)
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    with pytest.raises(ValueError):
        balanced_weights(LABELS, 1.5)


def test_neighbor_smoothing_only_touches_adjacent_age_groups():
    t = neighbor_smoothing(torch.tensor([0, 1, 2]), eps=0.2)
    assert torch.allclose(t.sum(1), torch.ones(3))
    assert t[0].tolist() == pytest.approx([0.8, 0.2, 0.0])
    assert t[1].tolist() == pytest.approx([0.1, 0.8, 0.1])
    assert t[2].tolist() == pytest.approx([0.0, 0.2, 0.8])
    u = uniform_smoothing(torch.tensor([1]), eps=0.3, num_classes=3)
    assert u[0].tolist() == pytest.approx([0.1, 0.8, 0.1])

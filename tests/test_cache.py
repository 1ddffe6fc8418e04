"""The decode-once cache: identical pixels, invalidation per file, identical training."""

import shutil

import numpy as np
import pytest
import torch

from maskcls.data import scan_train
from maskcls.data.cache import ImageCache
from maskcls.data.dataset import read_image
from tests.conftest import TINY, run_cli


def test_cache_holds_exactly_the_decoded_pixels_and_rebuilds_only_changed_files(demo_data, tmp_path):
    data = tmp_path / "d"
    shutil.copytree(demo_data / "train", data / "train")
    paths = scan_train(data).table["path"].tolist()[:30]
    cache = ImageCache(tmp_path / "cache", (64, 48))
    decoded = []
    slots, crcs = cache.ensure(paths, progress=decoded.append)
    assert sum(decoded) == 30 and sorted(slots) == list(range(30))
    for i in (0, 17):
        assert np.array_equal(cache.read(slots[i]), read_image(paths[i], (64, 48)))

    before = np.array([cache.read(s) for s in slots])
    victim = paths[5]
    shutil.copyfile(paths[12], victim)  # the file changes (new content, size and mtime)
    decoded.clear()
    again, _ = ImageCache(tmp_path / "cache", (64, 48)).ensure(paths, progress=decoded.append)
    # The changed file is decoded into a new slot (slots are never rewritten: a reader may map them).
    assert sum(decoded) == 1 and again[5] == 30 and np.array_equal(np.delete(again, 5), np.delete(slots, 5))
    after = np.array([cache.read(s) for s in again])
    changed = [i for i in range(30) if not np.array_equal(before[i], after[i])]
    assert changed == [5] and np.array_equal(after[5], read_image(paths[12], (64, 48)))
    assert np.array_equal(cache.read(slots[5]), before[5])  # the old slot kept its pixels

    decoded.clear()
    grown, _ = ImageCache(tmp_path / "cache", (64, 48)).ensure(paths + [scan_train(data).table["path"][40]],
                                                               progress=decoded.append)  # fmt: skip
    assert sum(decoded) == 1 and grown[-1] == 31  # an added file gets a new slot, nothing else is redone


@pytest.mark.slow
def test_training_is_bitwise_identical_with_and_without_cache(demo_data, tmp_path, capsys):
    weights = {}
    for flag in ("--cache", "--no-cache"):
        out = tmp_path / flag.strip("-")
        code, _, err = run_cli(capsys, "train-mask", "--data", demo_data, *TINY, "--epochs", "2", "--out", out, flag)
        assert code == 0, err
        weights[flag] = torch.load(out / "mask-test_resnet" / "fold0" / "last.pt", weights_only=True)["model"]
    assert (tmp_path / "cache" / "cache" / "96x72" / "images.u8").is_file()
    for k, v in weights["--cache"].items():
        assert torch.equal(v, weights["--no-cache"][k]), k

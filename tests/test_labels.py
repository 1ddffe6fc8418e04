import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from maskcls import heads, labels


@given(st.integers(0, 2), st.integers(0, 1), st.integers(0, 2))
def test_encode_decode_round_trip(mask, gender, age):
    c = labels.encode(mask, gender, age)
    assert 0 <= c < 18
    assert labels.decode(c) == (mask, gender, age)


def test_all_18_classes_are_distinct_and_vectorised():
    codes = [(m, g, a) for m in range(3) for g in range(2) for a in range(3)]
    classes = [labels.encode(*c) for c in codes]
    assert classes == list(range(18))
    m, g, a = labels.decode(np.arange(18))
    assert np.array_equal(labels.encode(m, g, a), np.arange(18))
    names = heads.class_names()
    assert len(names) == 18 and names[17] == "not_wear/female/>=60"
    assert names[labels.encode(1, 0, 1)] == "incorrect/male/30-59"
    assert heads.class_names(58)[5] == "wear/female/>=58" and heads.classes("age", 58) == ["<30", "30-57", ">=58"]


def test_contest_stems_and_genders():
    assert [labels.mask_from_stem(f"mask{i}") for i in range(1, 6)] == [0] * 5
    assert labels.mask_from_stem("incorrect_mask") == 1
    assert labels.mask_from_stem("normal") == 2
    assert labels.mask_from_stem("mask6") is None
    assert labels.gender_code("Male") == 0 and labels.gender_code("FEMALE") == 1
    with pytest.raises(ValueError, match="neither"):
        labels.gender_code("other")


@pytest.mark.parametrize("upper", [58, 59, 60])
def test_age_groups_with_configurable_upper_threshold(upper):
    assert labels.age_group(29, upper) == 0
    assert labels.age_group(30, upper) == 1
    assert labels.age_group(upper - 1, upper) == 1
    assert labels.age_group(upper, upper) == 2
    assert list(labels.age_group(np.array([18, 30, upper - 1, upper, 90]), upper)) == [0, 1, 1, 2, 2]
    assert labels.age_names(upper)[1] == f"30-{upper - 1}"

"""Fuzzing the readers of every file a user hands maskcls: each generated CSV or config value ends in
a result or one MaskclsError (exit 2, one line), never another exception, and a command that fails
writes nothing. Examples are drawn repeatably in CI (profile `repro`, tests/conftest.py); run with
HYPOTHESIS_PROFILE=explore to search deeper."""

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from maskcls import config
from maskcls.data.external import scan_external
from maskcls.data.index import scan_eval
from maskcls.data.table import excluded, load_relabel
from maskcls.errors import MaskclsError
from maskcls.post.probs import read_probs
from maskcls.post.submit import read_answers
from tests.conftest import run_cli

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(
        [
            "",
            " ",
            "nan",
            "inf",
            "-0",
            "1e400",
            "²",
            "١",
            "x",
            "0x10",
            "1,5",
            "\ufeff1",
            "NULL",
            "None",
            "../x.jpg",
            "a/b.jpg",
            ".hidden.jpg",
            "male",
            "FEMALE",
            "2",
            "-1",
            "60",
            "0.5",
        ]
    ),  # fmt: skip
    st.text(max_size=6),
)


def columns(expected: list[str]):
    """The expected columns with some dropped, some duplicated, some extra, shuffled."""
    extra = st.lists(st.sampled_from(["extra", "ImageID", "ans", "mask_0", "age_ge_30", ""]), max_size=2)
    return st.tuples(st.lists(st.sampled_from(expected), min_size=0, max_size=len(expected) + 1), extra).map(
        lambda t: [*t[0], *t[1]]
    )


@st.composite
def hostile_csv(draw, expected: list[str], rows: int = 4) -> bytes:
    cols = draw(st.one_of(st.just(expected), columns(expected)))
    body = [[draw(CELLS) for _ in cols] for _ in range(draw(st.integers(0, rows)))]
    buf = io.StringIO()
    csv.writer(buf, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))).writerows([cols, *body])
    text = buf.getvalue()
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]  # cut anywhere
    return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + text.encode("utf-8", "surrogatepass")


def one_line_or_result(read, path: Path):
    try:
        return read(path)
    except MaskclsError as e:
        assert str(e) and "\n" not in str(e).strip(), str(e)
        return None


PROB_COLUMNS = ["ImageID", "mask_0", "mask_1", "mask_2", "gender_0", "gender_1", "age_0", "age_1", "age_2"]


@FUZZ
@given(data=hostile_csv(PROB_COLUMNS))
@example(data=b"ImageID,mask_0,mask_1,mask_2\na.jpg,nan,0.5,0.5\n")
@example(data=b"ImageID,mask_0,mask_1,mask_2\na.jpg,1e400,0,0\n")
@example(data=b"ImageID,mask_1,extra\n0.0,0.0, \n")  # found by the explore profile: a head without mask_0
def test_prediction_files(tmp_path, data):
    path = tmp_path / "p.csv"
    path.write_bytes(data)
    df = one_line_or_result(read_probs, path)
    if df is not None:  # what passes is what every later step may rely on
        p = df[[c for c in df.columns if c in PROB_COLUMNS[1:]]].to_numpy(dtype=float)
        assert ((p >= 0) & (p <= 1)).all() and not df["ImageID"].duplicated().any()


@FUZZ
@given(data=hostile_csv(["ImageID", "ans"]))
@example(data=b"ImageID,ans\na.jpg,99\n")
@example(data=b"ImageID,ans\na.jpg,1.5\n")
def test_answer_keys(tmp_path, data):
    path = tmp_path / "key.csv"
    path.write_bytes(data)
    ids = pd.Series(["a.jpg", "b.jpg"])
    key = one_line_or_result(lambda p: read_answers(p, ids), path)
    if key is not None:
        assert key["ans"].between(0, 17).all() and list(key["ImageID"]) == list(ids)


@FUZZ
@given(data=hostile_csv(["ImageID", "ans"]))
def test_info_csv(tmp_path, data):
    (tmp_path / "eval" / "images").mkdir(parents=True, exist_ok=True)
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / "eval" / "images" / name).write_bytes(b"\xff\xd8\xff")
    (tmp_path / "eval" / "info.csv").write_bytes(data)
    index = one_line_or_result(scan_eval, tmp_path)
    if index is not None:
        assert all(Path(p).is_file() for p in index.table["path"])


@pytest.fixture(scope="module")
def persons_table(demo_data):
    from maskcls.data import scan_train

    return scan_train(demo_data).table


@FUZZ
@given(data=hostile_csv(["person", "gender", "age"]))
@example(data=b"person,gender,age\n000001,,\xc2\xb2\n")
def test_relabel_files(tmp_path, data):
    path = tmp_path / "relabel.csv"
    path.write_bytes(data)
    df = one_line_or_result(load_relabel, path)
    if df is not None:
        assert not df["person"].duplicated().any()


@FUZZ
@given(data=hostile_csv(["person", "stem", "path"]))
def test_exclude_files(tmp_path, data, persons_table):
    path = tmp_path / "exclude.csv"
    path.write_bytes(data)
    rows = one_line_or_result(lambda p: excluded(persons_table, p), path)
    if rows is not None:
        assert len(rows) == len(persons_table)


@FUZZ
@given(data=hostile_csv(["path", "age", "gender"]))
@example(data=b"path,age,gender\n,0.0,0.0\n")  # found by the explore profile: an empty path
def test_external_face_lists(tmp_path, data):
    path = tmp_path / "faces.csv"
    path.write_bytes(data)
    df = one_line_or_result(lambda p: scan_external(p, 60), path)
    if df is not None:
        assert df["age"].between(0, 120).all()


SET_VALUES = st.one_of(CELLS, st.recursive(CELLS, lambda c: st.lists(c, max_size=3) | st.dictionaries(
    st.text(max_size=4), c, max_size=3), max_leaves=8))  # fmt: skip


@FUZZ
@given(key=st.sampled_from([*config.defaults(), "epoch", "", "lr "]), value=SET_VALUES)
@example(key="lr", value=json.loads("[" * 400 + "]" * 400))
@example(key="seed", value=-1)
@example(key="img_size", value=[0, 10**9])
@example(key="img_size", value=0.0)  # found by the explore profile
def test_set_and_config_values(key, value):
    try:
        cfg = config.resolve("age", sets={key: value})
    except MaskclsError as e:
        assert "\n" not in str(e).strip()
        return
    assert cfg[key] is None or type(cfg[key]) is type(config.defaults()[key]) or config.defaults()[key] is None


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=hostile_csv(PROB_COLUMNS, rows=3))
def test_submit_writes_nothing_on_a_hostile_prediction_file(demo_data, tmp_path_factory, capsys, data):
    tmp = tmp_path_factory.mktemp("sub")
    (tmp / "p.csv").write_bytes(data)
    code, _, err = run_cli(capsys, "submit", "--joint", tmp / "p.csv", "--data", demo_data, "--out",
                           tmp / "out")  # fmt: skip
    assert code == 2 and err.strip().count("\n") == 0 and "Traceback" not in err
    assert not (tmp / "out").exists() or not any((tmp / "out").iterdir())


# JSON records a run keeps beside its weights: tuned.json, crop.json, config.json ------------------------
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
NEAR_TUNED = st.fixed_dictionaries({"heads": st.dictionaries(
    st.sampled_from(["mask", "gender", "age", "class", "x"]),
    st.fixed_dictionaries({"bias": st.one_of(st.lists(st.one_of(st.floats(), st.integers(), st.text(max_size=2)),
                                                      max_size=19), JSON_VALUES)},
                          optional={"cutoffs": st.one_of(st.lists(st.integers(0, 100), max_size=3), JSON_VALUES)}),
    max_size=3)})  # fmt: skip


def _json(value) -> str:
    return json.dumps(value, allow_nan=True)


@FUZZ
@given(record=st.one_of(NEAR_TUNED, JSON_VALUES))
@example(record={"heads": {"mask": {"bias": [float("nan"), 0, 0]}}})
@example(record={"heads": {"age": {"bias": [0, 0, 0], "cutoffs": [60, 30]}}})
def test_tuned_json(tmp_path, record):
    from maskcls.post.tune import apply_tuned, load_tuned

    path = tmp_path / "tuned.json"
    path.write_text(_json(record))
    try:
        heads = load_tuned(path)
    except MaskclsError:
        return
    import numpy as np

    probs = {h: np.full((2, n), 1 / n) for h, n in (("mask", 3), ("gender", 2), ("age", 3), ("class", 18))}
    for p in apply_tuned(probs, heads).values():  # what is accepted applies cleanly
        assert np.isfinite(p).all() and np.allclose(p.sum(1), 1)


@FUZZ
@given(record=st.one_of(JSON_VALUES, st.fixed_dictionaries(
    {"size": st.one_of(st.lists(st.integers(-5, 70000), max_size=3), JSON_VALUES),
     "margin": st.one_of(st.floats(), JSON_VALUES), "down_shift": st.one_of(st.floats(), JSON_VALUES)})))  # fmt: skip
@example(record={"size": [60000, 45000], "margin": 0.2, "down_shift": 0.0})
def test_crop_records(record):
    from maskcls.crop import settings_of

    try:
        s = settings_of(record) if isinstance(record, dict) else settings_of({"size": record})
    except MaskclsError:
        return
    assert all(16 <= v <= 1024 for v in s.size) and 0 <= s.margin <= 2


@FUZZ
@given(changes=st.dictionaries(st.sampled_from([*config.defaults(registries=False), "nonsense"]), JSON_VALUES,
                               max_size=3))  # fmt: skip
def test_run_configs(tmp_path, changes):
    from maskcls.runs import Run

    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    (run / "config.json").write_text(_json({**config.defaults(registries=False), **changes}))
    try:
        cfg = Run(run).config
    except MaskclsError:
        return
    assert cfg.keys() >= config.defaults(registries=False).keys()

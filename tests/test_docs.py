"""Every ```python block of docs/api.md runs (from the repository root's files, in tmp_path)."""

import os
import re
import subprocess
import sys

import pytest

from builders import ROOT

BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "api.md").read_text(), re.S)


def test_api_doc_has_examples():
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_api_doc_example_runs(tmp_path, index):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = dict(os.environ, GEOUNET_DISABLE_PLUGINS="1")
    out = subprocess.run([sys.executable, "-c", BLOCKS[index]], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


TILING = (ROOT / "docs" / "tiling.md").read_text()
TILING_BLOCKS = [("python", b) for b in re.findall(r"```python\n(.*?)```", TILING, re.S)] + [
    ("sh", b) for b in re.findall(r"```sh\n(.*?)```", TILING, re.S)]


def test_tiling_doc_has_examples():
    assert {kind for kind, _ in TILING_BLOCKS} == {"python", "sh"}


@pytest.mark.parametrize("index", range(len(TILING_BLOCKS)))
def test_tiling_doc_example_runs(tmp_path, index):
    """docs/tiling.md: every python and sh block runs (the benchmark is a ``text`` block)."""
    kind, block = TILING_BLOCKS[index]
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = dict(os.environ, GEOUNET_DISABLE_PLUGINS="1",
               PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    cmd = [sys.executable, "-c", block] if kind == "python" else ["bash", "-euo", "pipefail",
                                                                  "-c", block]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


TRAINING = (ROOT / "docs" / "training.md").read_text()
TRAINING_BLOCKS = re.findall(r"```(python|sh)\n(.*?)```", TRAINING, re.S)


def test_training_doc_blocks_run_in_order(tmp_path):
    """docs/training.md: its python and sh blocks run one after the other in one folder
    (each uses what the ones before made); the 4-GPU ``torchrun`` is a ``text`` block."""
    assert len(TRAINING_BLOCKS) >= 8
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = dict(os.environ, GEOUNET_DISABLE_PLUGINS="1",
               PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    for kind, block in TRAINING_BLOCKS:
        cmd = [sys.executable, "-c", block] if kind == "python" else [
            "bash", "-euo", "pipefail", "-c", block]
        out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, f"{block}\n{out.stderr[-3000:]}"
        if "cmp first.safetensors" in block:
            assert "identical" in out.stdout
        if "--held-out-of" in block:
            assert "pixel     IoU" in out.stdout

"""Shared fixtures; the data builders themselves are in ``builders.py``."""

from __future__ import annotations

import pytest

from builders import random_scene, tiny_model

@pytest.fixture(scope="session", autouse=True)
def onnx_cache_dir(tmp_path_factory):
    """Exported ONNX graphs go to a fresh cache for the session, never to ~/.cache."""
    import os

    path = tmp_path_factory.mktemp("geounet-cache")
    old = os.environ.get("GEOUNET_CACHE_DIR")
    os.environ["GEOUNET_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("GEOUNET_CACHE_DIR", None)
    else:
        os.environ["GEOUNET_CACHE_DIR"] = old


@pytest.fixture
def scene(tmp_path):
    """A 300x200 1-band uint16 scene in EPSG:32616 at 0.5 m."""
    return random_scene(tmp_path / "scene.tif")


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    """A tiny binary 1-band model file."""
    return tiny_model(tmp_path_factory.mktemp("models") / "tiny.safetensors")


@pytest.fixture
def runner():
    """click's CliRunner (stderr kept separate where click supports it)."""
    from click.testing import CliRunner

    return CliRunner()

"""Every error geounet raises is a GeounetError subclass that also inherits a built-in."""

from __future__ import annotations

import ast
import inspect

import pytest

from builders import ROOT
from geounet import errors
from geounet.config import PredictConfig, TilingConfig, VectorizeConfig

CLASSES = {name: cls for name, cls in inspect.getmembers(errors, inspect.isclass)
           if issubclass(cls, errors.GeounetError)}


def _raised_names() -> list[tuple[str, int, str]]:
    """``(file, line, class name)`` of every ``raise X(...)`` of an errors class in geounet/."""
    out = []
    for path in sorted((ROOT / "geounet").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in CLASSES:
                    out.append((str(path.relative_to(ROOT)), node.lineno, name))
    return out


def test_every_subclass_inherits_a_builtin():
    for name, cls in CLASSES.items():
        if cls is errors.GeounetError:
            continue
        builtins = [b for b in cls.__mro__ if b.__module__ == "builtins"
                    and b not in (Exception, BaseException, object)]
        assert builtins, f"{name} inherits no built-in exception"


def test_no_raise_uses_the_bare_root():
    raised = _raised_names()
    assert len(raised) > 80  # the scan sees the package's raises
    bare = [f"{f}:{n}" for f, n, name in raised if name == "GeounetError"]
    assert bare == []


@pytest.mark.parametrize(("make", "builtin"), [
    (lambda: VectorizeConfig(min_area_m2=-1), ValueError),
    (lambda: VectorizeConfig(connectivity=6), ValueError),
    (lambda: PredictConfig(precision="fp8"), ValueError),
    (lambda: PredictConfig(tta="rot"), ValueError),
    (lambda: TilingConfig(8), ValueError),
])
def test_bad_options_are_caught_as_the_builtin(make, builtin):
    with pytest.raises(builtin) as info:
        make()
    assert isinstance(info.value, errors.GeounetError)


def test_missing_scene_is_a_file_not_found_error(tmp_path, model_file):
    from geounet.pipeline.run import predict_scene

    with pytest.raises(FileNotFoundError, match="missing.tif"):
        predict_scene(tmp_path / "missing.tif", None, model=model_file)


def test_bad_threshold_is_a_value_error(tmp_path, scene, model_file):
    from geounet.pipeline.run import predict_scene

    with pytest.raises(ValueError, match="threshold 1.5 is outside 0..1"):
        predict_scene(scene, None, model=model_file, threshold=1.5)

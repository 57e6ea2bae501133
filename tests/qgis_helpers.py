"""Helpers for tests/test_qgis.py: a private QGIS home, qgis_process, a PyQGIS driver.

This module has two sides:

* imported by pytest (geounet's venv): functions that build a QGIS environment
  kept out of ``$HOME``, run ``qgis_process.bin`` and QGIS's own Python, and
  make a tiny model when the bundled one is missing. Nothing here imports
  ``qgis``.
* run as a script by QGIS's Python (``/usr/bin/python3 tests/qgis_helpers.py
  SPEC.json RESULT.json``): starts a headless ``QgsApplication``, registers
  ``plugins/qgis/geounet_provider.py``, runs the cases listed in the spec and
  writes what happened as JSON. It imports nothing from geounet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = ROOT / "plugins" / "qgis"
SAMPLE_SCENE = ROOT / "examples" / "data" / "atlanta_sample.tif"
BUNDLED_MODEL = ROOT / "geounet" / "models" / "weights" / "buildings-atlanta.safetensors"
QGIS_PROCESS = Path("/usr/bin/qgis_process.bin")
QGIS_PYTHON = Path("/usr/bin/python3")
PYQGIS = Path("/usr/lib/python3/dist-packages/qgis/core")
ALGORITHM = "geounet_segment"
DISPLAY_NAME = "Segment buildings / land use (geounet)"
GEOUNET_FIELDS = {"class_id": "int", "class_name": "str", "area_m2": "float", "score": "float"}

#: Threshold that makes the untrained tiny model draw a few hundred polygons on the
#: sample (its probabilities sit near 0.605); only used when the bundled model is missing.
TINY_THRESHOLD = 0.607


def qgis_installed() -> bool:
    """Whether QGIS's command-line runner and Python bindings are installed."""
    return QGIS_PROCESS.is_file() and QGIS_PYTHON.is_file() and PYQGIS.is_dir()


def make_tiny_model(path: Path) -> Path:
    """Save the tiny, seeded, untrained 1-band U-Net used when no bundled model exists.

    Args:
        path: Destination ``.safetensors`` file.

    Returns:
        ``path``.
    """
    import torch

    from geounet.models import ModelMetadata, build_model, save_model

    torch.manual_seed(0)
    model = build_model("unet", 1, 1, base_channels=4, depth=2)
    meta = ModelMetadata(
        name="tiny", architecture="unet", arch_args={"base_channels": 4, "depth": 2},
        bands=[1], band_names=["pan"], band_mean=[457.0], band_std=[263.0],
        classes=["background", "building"], gsd_m=0.5, tile_size_px=256, overlap_px=32,
        threshold=0.5, pad_multiple=4,
    )
    save_model(model, meta, str(path))
    return Path(path)


def model_parameters(tmp_dir: Path) -> dict[str, str]:
    """Algorithm parameters choosing the model: none for the bundled one, else a tiny model.

    Args:
        tmp_dir: Folder for the tiny model file.

    Returns:
        ``{}`` when geounet's bundled model is installed, else ``MODEL`` and ``THRESHOLD``.
    """
    if BUNDLED_MODEL.is_file():
        return {}
    model = make_tiny_model(Path(tmp_dir) / "tiny.safetensors")
    return {"MODEL": str(model), "THRESHOLD": str(TINY_THRESHOLD)}


def cli_options(params: dict[str, str]) -> list[str]:
    """``geounet predict`` options equal to the given algorithm parameters."""
    names = {"MODEL": "--model", "THRESHOLD": "--threshold", "MIN_AREA": "--min-area",
             "SIMPLIFY": "--simplify", "TILE_SIZE": "--tile-size", "OVERLAP": "--overlap",
             "DEVICE": "--device", "BANDS": "--bands"}
    out: list[str] = []
    for key, value in params.items():
        if key in names:
            out += [names[key], str(value)]
    return out


def qgis_env(home: Path, scripts_folder: Path | None = PLUGIN_DIR, **extra: str) -> dict:
    """An environment that runs QGIS headless with its settings and caches in ``home``.

    Args:
        home: An empty temporary folder (made if missing).
        scripts_folder: Folder set as QGIS's Processing Scripts folder.
        **extra: More variables (``GEOUNET_PYTHON=...``).

    Returns:
        A copy of ``os.environ`` with the QGIS and XDG folders pointing into ``home``.
    """
    home = Path(home)
    config = home / "qgis-config"
    ini = config / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    if scripts_folder is not None:
        # The quotes matter: ';' starts a comment in QSettings ini files.
        ini.write_text(f'[Processing]\nConfiguration\\SCRIPTS_FOLDERS="{scripts_folder}"\n')
    for sub in ("cache", "config", "runtime"):
        (home / sub).mkdir(exist_ok=True)
    (home / "runtime").chmod(0o700)
    env = dict(os.environ)
    for key in ("PYTHONPATH", "PYTHONHOME", "GEOUNET_PYTHON", "VIRTUAL_ENV"):
        env.pop(key, None)
    env.update(
        QGIS_CUSTOM_CONFIG_PATH=str(config), XDG_CACHE_HOME=str(home / "cache"),
        XDG_CONFIG_HOME=str(home / "config"), XDG_RUNTIME_DIR=str(home / "runtime"),
        QT_QPA_PLATFORM="offscreen",
        # Modest CPU use: one thread for torch (geounet's child inherits these).
        OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
    )
    env.update(extra)
    return env


def run_qgis_process(params: dict[str, str], env: dict, timeout: float = 120,
                     algorithm: str = f"script:{ALGORITHM}"):
    """Run ``qgis_process.bin --json run`` and return the process and its parsed JSON.

    Args:
        params: Algorithm parameters (``NAME: value``).
        env: Environment from :func:`qgis_env`.
        timeout: Seconds before the run counts as hung.
        algorithm: Algorithm id.

    Returns:
        ``(completed_process, json_or_None)``.
    """
    args = [str(QGIS_PROCESS), "--json", "run", algorithm, "--"]
    args += [f"{key}={value}" for key, value in params.items()]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip() else None
    except json.JSONDecodeError:
        data = None
    return proc, data


def run_pyqgis_cases(spec: dict, env: dict, work: Path, timeout: float = 240) -> dict:
    """Run this file under QGIS's Python with ``spec``; return its JSON result.

    Args:
        spec: ``{"cases": [...]}``, see :func:`_pyqgis_main`.
        env: Environment from :func:`qgis_env`.
        work: Folder for the spec and result files.
        timeout: Seconds before the run counts as hung.

    Returns:
        The result dictionary, with ``returncode`` and ``stderr`` added.
    """
    spec_file = Path(work) / "spec.json"
    result_file = Path(work) / "result.json"
    spec_file.write_text(json.dumps(spec))
    proc = subprocess.run([str(QGIS_PYTHON), __file__, str(spec_file), str(result_file)],
                          env=env, capture_output=True, text=True, timeout=timeout)
    result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    result["returncode"] = proc.returncode
    result["stderr"] = proc.stderr[-4000:]
    return result


def leftovers(folder: Path) -> list[str]:
    """Every entry in ``folder``, hidden ones included, sorted."""
    return sorted(p.name for p in Path(folder).iterdir())


def processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line contains ``text`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
        except OSError:
            continue
        if text in cmdline and int(entry.name) != os.getpid():
            pids.append(int(entry.name))
    return pids


# --------------------------------------------------------------------- PyQGIS side


def _pyqgis_main(spec_path: str, result_path: str) -> int:
    """Run the PyQGIS cases of a spec file under QGIS's Python; write the result file.

    The spec is ``{"cases": [{"name": ..., "kind": "run"|"cancel"|"nonfile",
    "params": {...}, "watch": "/folder"}]}``. Each case is recorded with its
    results, the progress values, the messages, the error text and timings.
    """
    sys.path.append("/usr/share/qgis/python/plugins")
    sys.path.insert(0, str(PLUGIN_DIR))
    from qgis.core import (QgsApplication, QgsProcessingContext, QgsProcessingFeedback,
                           QgsProject, QgsRasterLayer)

    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    out: dict = {"cases": {}}
    try:
        import processing  # noqa: F401 - needs the plugins path
        from processing.core.Processing import Processing

        Processing.initialize()
        from geounet_provider import GeounetProvider, register, unregister

        provider = register()
        registry = QgsApplication.processingRegistry()
        out["provider_id"] = provider.id()
        out["provider_is_geounet"] = isinstance(registry.providerById("geounet"),
                                                GeounetProvider)
        out["algorithms"] = [a.id() for a in provider.algorithms()]

        class Feedback(QgsProcessingFeedback):
            """Records progress, messages and errors; may cancel at the first report."""

            def __init__(self, cancel_at_first_report=False):
                super().__init__()
                self.progress = []
                self.infos = []
                self.errors = []
                self.cancelled_at = None
                self.cancel_at_first_report = cancel_at_first_report
                self.progressChanged.connect(self._on_progress)

            def _on_progress(self, value):
                self.progress.append(value)
                if self.cancel_at_first_report and self.cancelled_at is None:
                    self.cancelled_at = time.monotonic()
                    self.cancel()

            def reportError(self, error, fatalError=False):  # noqa: N802 - QGIS API
                self.errors.append(error)

            def pushInfo(self, info):  # noqa: N802 - QGIS API
                self.infos.append(info)

        for case in json.loads(Path(spec_path).read_text())["cases"]:
            params = dict(case.get("params", {}))
            layer = None
            if case["kind"] == "nonfile":
                layer = QgsRasterLayer(
                    "type=xyz&url=http://127.0.0.1:9/%7Bz%7D/%7Bx%7D/%7By%7D.png&zmin=0&zmax=19",
                    "web tiles", "wms")
                params["INPUT"] = layer
            feedback = Feedback(cancel_at_first_report=case["kind"] == "cancel")
            context = QgsProcessingContext()
            context.setProject(QgsProject.instance())
            alg = registry.createAlgorithmById(f"geounet:{ALGORITHM}")
            record: dict = {"layer_valid": layer.isValid() if layer is not None else None}
            start = time.monotonic()
            try:
                results, ok = alg.run(params, context, feedback)
            except Exception as exc:  # noqa: BLE001 - recorded for the test to judge
                results, ok = {}, False
                feedback.errors.append(f"{type(exc).__name__}: {exc}")
            end = time.monotonic()
            record.update(
                ok=bool(ok),
                results={k: v for k, v in (results or {}).items()
                         if isinstance(v, (str, int, float, type(None)))},
                progress=feedback.progress, infos=feedback.infos, errors=feedback.errors,
                seconds=end - start,
                seconds_after_cancel=(end - feedback.cancelled_at
                                      if feedback.cancelled_at is not None else None),
                live_children=(processes_mentioning(case["watch"]) if case.get("watch")
                               else []),
            )
            out["cases"][case["name"]] = record
            del alg, context, layer
        unregister(provider)
        out["unregistered"] = registry.providerById("geounet") is None
    finally:
        Path(result_path).write_text(json.dumps(out, indent=1, default=str))
        QgsProject.instance().clear()
        app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(_pyqgis_main(sys.argv[1], sys.argv[2]))

"""``geounet quantize`` from the command line, and the guide's quantize example, run as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

from builders import LANDSAT_SCENE, ROOT

from geounet.cli import cli
from geounet.quantize import quantization_info


def _run(runner, *args):
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_quantize_then_predict_with_the_int8_graph(tmp_path, runner):
    """The int8 file is written, summarised in one line, and predicts on onnxruntime."""
    out = tmp_path / "lc-int8.onnx"
    r = _run(runner, "quantize", "landcover-landsat7", "--calibration", LANDSAT_SCENE,
             "--tiles", 2, "--per-tensor", "--seed", 3, "-o", out)
    assert r.exit_code == 0, r.output
    assert re.search(r"wrote .*lc-int8\.onnx \(int8 QDQ, int8 per tensor; 2 calibration tiles "
                     r"of 256 px; on them max \|dp\| 0\.\d{4}, classes agree \d+\.\d{3} %\)",
                     r.output), r.output
    info = quantization_info(out)
    assert info is not None and info["calibration"]["seed"] == 3
    r = _run(runner, "predict", LANDSAT_SCENE, "-o", tmp_path / "lc.gpkg", "--model", out,
             "--runtime", "onnxruntime", "--mask-out", tmp_path / "lc.tif", "-q")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "lc.gpkg").stat().st_size > 0 and (tmp_path / "lc.tif").exists()


def test_bad_values_are_one_line_errors_and_leave_nothing(tmp_path, runner):
    """--tiles 0, a missing scene and an existing output: ``Error: ...``, status 1."""
    cases = [
        (["--tiles", 0], "--tiles 0: expected at least 1 calibration tile"),
        (["--region", "east:2"], "region 'east:2' is not understood"),
    ]
    for extra, needle in cases:
        r = _run(runner, "quantize", "landcover-landsat7", "--calibration", LANDSAT_SCENE,
                 "-o", tmp_path / "q.onnx", *extra)
        assert r.exit_code == 1 and r.output.strip().splitlines() == [r.output.strip()]
        assert r.output.startswith("Error: ") and needle in r.output, r.output
    r = _run(runner, "quantize", "--calibration", tmp_path / "none.tif", "-o", tmp_path / "q.onnx")
    assert r.exit_code == 1 and "none.tif' does not exist" in r.output
    (tmp_path / "q.onnx").write_text("x")
    r = _run(runner, "quantize", "landcover-landsat7", "--calibration", LANDSAT_SCENE, "-o",
             tmp_path / "q.onnx")
    assert r.exit_code == 1 and "pass --overwrite" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.onnx"]


def test_quantize_help_imports_nothing_heavy():
    """``geounet quantize --help`` loads neither onnxruntime nor onnx nor torch."""
    code = ("import sys; from geounet.cli import cli; from click.testing import CliRunner; "
            "r = CliRunner().invoke(cli, ['quantize', '--help']); assert r.exit_code == 0; "
            "assert '--calibration' in r.output; "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'openvino', 'geopandas') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def guide_commands() -> list[str]:
    """The command lines of the ```bash block of docs/guide.md's ``geounet quantize`` section."""
    text = (ROOT / "docs" / "guide.md").read_text()
    section = text[text.index("## geounet quantize"):]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(blocks) == 1, "the quantize section has no bash example"
    return [ln for ln in blocks[0].splitlines() if ln.strip()]


def test_the_guide_example_runs_as_written(tmp_path):
    """Each command of the guide's example runs (in a folder with ``examples/``), status 0."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    commands = guide_commands()
    assert [c.split()[1] for c in commands] == ["quantize", "predict", "evaluate"]
    outputs = []
    for line in commands:
        args = shlex.split(line)
        assert args[0] == "geounet"
        done = subprocess.run([sys.executable, "-m", "geounet", *args[1:]], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, (line, done.stderr[-2000:])
        outputs.append(done.stdout + done.stderr)
    assert "int8 QDQ" in outputs[0] and "buildings F1" in outputs[2]
    info = quantization_info(tmp_path / "buildings-int8.onnx")
    assert info is not None and info["calibration"]["region"] == "west:0.667"


def _without(modules: tuple[str, ...], args: list, cwd) -> subprocess.CompletedProcess:
    """``geounet ARGS`` in a fresh process in which ``modules`` cannot be imported."""
    code = ("import sys\n"
            f"for name in {modules!r}:\n"
            "    sys.modules[name] = None\n"
            f"sys.argv = ['geounet'] + {[str(a) for a in args]!r}\n"
            "from geounet.cli.main import main\nmain()\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)


def test_without_torch_it_quantizes_the_shipped_graph_and_without_onnx_it_says_so(tmp_path):
    """No torch: the bundled graph is quantised; no onnx: one line names the extra."""
    args = ["quantize", "landcover-landsat7", "--calibration", LANDSAT_SCENE, "--tiles", 2,
            "-o", tmp_path / "q.onnx"]
    done = _without(("torch", "segmentation_models_pytorch"), args, tmp_path)
    assert done.returncode == 0, done.stderr
    assert quantization_info(tmp_path / "q.onnx") is not None
    done = _without(("torch", "segmentation_models_pytorch", "onnx"), [*args, "--overwrite"],
                    tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: onnx is not installed; install it with: pip install 'geounet[onnx]'"]

"""The house rules of docs/architecture.md, checked: no import cycles, short functions and modules."""

from __future__ import annotations

import subprocess
import sys

from builders import ROOT

TOOL = ROOT.parent / "shared" / "tools" / "structure.py"


def test_no_import_cycles_and_no_oversized_function_or_module():
    assert TOOL.exists(), f"{TOOL} (the project's shared structure tool) is missing"
    out = subprocess.run([sys.executable, str(TOOL), str(ROOT / "geounet"), "--max-func", "80",
                          "--max-module", "400"], capture_output=True, text=True)
    last = out.stdout.strip().splitlines()[-1]
    assert out.returncode == 0, out.stdout
    assert last.startswith("cycles 0;") and last.endswith("modules over 400: 0")

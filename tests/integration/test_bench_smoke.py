"""Every benchmark still runs: ``poller bench all --small --only NAME`` from the console script,
outside the checkout's directory, completes and prints its ratio line (never timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.all import SIZES

POLLER = Path(sys.executable).parent / "poller"


@pytest.mark.parametrize("name", list(SIZES))
def test_benchmark_completes_and_prints_its_ratio_line(name: str, tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    result = subprocess.run([str(POLLER), "bench", "all", "--small", "--only", name,
                             "--out", str(out)], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0] == f"== {name}"
    assert any(line.strip().startswith("ratio: ") for line in lines), result.stdout
    document = json.loads(out.read_text())
    assert document["command"] == "poller bench all --small"
    assert len(document["results"][name]) == len(SIZES[name][1])


def test_unknown_benchmark_exits_2(tmp_path: Path) -> None:
    result = subprocess.run([str(POLLER), "bench", "nope"], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert "unknown benchmark 'nope'" in result.stderr

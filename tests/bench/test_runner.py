"""The benchmark runner prints and writes figures, including ones a benchmark could not measure."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from tests.bench import __main__ as runner


def test_runner_prints_a_table_and_writes_json_with_unmeasured_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = types.ModuleType("tests.bench.bench_fake")
    fake.run = lambda: {  # type: ignore[attr-defined]
        "fake_rate": {"value": 1234.5, "unit": "msgs/s", "goal": ">= 1000"},
        "fake_count": {"value": 7, "unit": "runs"},
        "fake_missing": {"value": None, "unit": "s", "note": "did not finish"},
    }
    monkeypatch.setitem(sys.modules, "tests.bench.bench_fake", fake)
    monkeypatch.setattr(runner, "available", lambda: ["fake"])
    out = tmp_path / "figures.json"
    assert runner.main(["fake", "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "1,234.500" in table and "(goal >= 1000)" in table and "not measured" in table
    data = json.loads(out.read_text())
    assert data["fake_missing"]["value"] is None and data["fake_count"]["value"] == 7
    assert data["_machine"]["cpus"] >= 1


def test_unknown_benchmark_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "available", lambda: ["fake"])
    with pytest.raises(SystemExit) as exc:
        runner.main(["nope"])
    assert exc.value.code == 2

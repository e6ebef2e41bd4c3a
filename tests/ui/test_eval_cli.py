"""`promptartisan eval --tiny` runs the whole bench offline and writes every output."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from promptartisan.agent.benchmarks import load_benchmark
from promptartisan.agent.evaluation import METHODS
from promptartisan.ui.cli import main


@pytest.fixture
def tiny_env(tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny models from the shared folder, on the CPU, no promptartisan.toml in reach."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PROMPTARTISAN_TINY_DIR", str(tiny_dir))
    monkeypatch.setenv("PROMPTARTISAN_DEVICE", "cpu")
    monkeypatch.setenv("PROMPTARTISAN_DTYPE", "float32")
    return tmp_path


@pytest.mark.slow
def test_eval_tiny_runs_the_whole_bench(tiny_env: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    out = tiny_env / "eval"
    code = main(["eval", "--tiny", "--size", "64", "--steps", "2", "--out", str(out),
                 "--no-progress"])
    printed = capsys.readouterr()
    assert code == 0, printed.err[-2000:]
    cases = [case.id for case in load_benchmark("mie-lite").cases]
    with (out / "results.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["case"], r["method"]) for r in rows] == [(c, m) for c in cases for m in METHODS]
    for case in cases:
        assert (out / "grids" / f"{case}.png").stat().st_size > 0
        total = sum(float(r["pickscore"]) for r in rows if r["case"] == case)
        assert total == pytest.approx(1.0, abs=2e-4)
    assert (out / "plot.png").stat().st_size > 0
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert all(f"| {m} | {len(cases)} |" in summary for m in METHODS)
    assert "meaningless" in summary and "Failures" not in summary, summary
    assert "| single |" in printed.out
    # The single pass pastes the result into the source: the background is the source's own
    # (NaN where, at 64 px, the dilated masks leave no background at all).
    psnrs = [float(r["bg_psnr"]) for r in rows if r["method"] == "single"]
    assert all(v == 100.0 or math.isnan(v) for v in psnrs) and psnrs.count(100.0) >= 8


@pytest.mark.slow
def test_eval_subset_of_cases_and_methods(tiny_env: Path) -> None:
    out = tiny_env / "eval"
    assert main(["eval", "--tiny", "--size", "64", "--steps", "1", "--out", str(out),
                 "--methods", "single", "--cases", "chelsea-blue-eyes-nose",
                 "--no-progress"]) == 0
    with (out / "results.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["case"], r["method"]) for r in rows] == [("chelsea-blue-eyes-nose", "single")]
    assert float(rows[0]["pickscore"]) == 1.0  # a softmax over one method


@pytest.mark.parametrize("argv, message", [
    (["--methods", "single,bogus"], "unknown method bogus"),
    (["--cases", "nope"], "no case nope"),
    (["--bench", "missing.json"], "no benchmark 'missing.json'"),
    (["--bench", "bad.json"], "case 'x': region 1: polygon 1 has 2 points"),
])
def test_eval_refuses_bad_input_with_a_clear_error(
        tiny_env: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    bad = {"name": "bad", "cases": [{"id": "x", "image": "skimage:coffee", "caption_after": "c",
                                     "regions": [{"mask": {"polygons": [[[1, 1], [2, 2]]]},
                                                  "prompt": "p"}]}]}
    (tiny_env / "bad.json").write_text(json.dumps(bad), encoding="utf-8")
    assert main(["eval", "--tiny", "--out", str(tiny_env / "o"), *argv]) == 2
    assert message in capsys.readouterr().err

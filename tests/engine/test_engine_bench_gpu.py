"""The GPU benchmark script, run end to end on the tiny models of each family on the CPU (a smoke
run, not a timing test): every case in both modes, its figures as JSON and a Markdown table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from promptartisan.engine import bench_gpu, flex


@pytest.mark.parametrize("arch", ["tiny", "tiny-sdxl"])
@pytest.mark.slow
def test_bench_gpu_writes_every_case_in_both_modes(tiny_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   arch: str) -> None:
    monkeypatch.setenv("PROMPTARTISAN_TINY_DIR", str(tiny_dir))
    out = tmp_path / "out"
    assert bench_gpu.main(["--out", str(out), "--arch", arch, "--size", "64", "--steps", "2",
                           "--regions", "1,2", "--sequential", "2", "--repeat", "1",
                           "--device", "cpu", "--compile-backend", "eager"]) == 0
    report = json.loads((out / "bench_gpu.json").read_text())
    cases = [(row["mode"], row["case"], row["n"]) for row in report["rows"]]
    assert cases == [("eager", "stock", 1), ("eager", "single", 1), ("eager", "single", 2),
                     ("eager", "sequential", 2), ("compiled", "stock", 1),
                     ("compiled", "sequential", 2), ("compiled", "single", 1),
                     ("compiled", "single", 2)]
    for row in report["rows"]:
        assert row["edit_s"] > 0 and row["step_s"] > 0
        assert row["unet_calls"] == 2 * (row["n"] if row["case"] == "sequential" else 1)
    assert report["summary"]["eager_single_n2_over_eager_stock"] > 0
    assert report["skipped"] == []
    table = (out / "bench_gpu.md").read_text()
    assert table.count("\n| ") == len(cases) + 1  # the header and one line per case


def test_bench_gpu_skips_what_would_start_after_the_budget(tiny_dir: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setenv("PROMPTARTISAN_TINY_DIR", str(tiny_dir))
    assert bench_gpu.main(["--out", str(tmp_path), "--arch", "tiny", "--size", "64", "--steps",
                           "1", "--regions", "1", "--sequential", "1", "--modes", "eager",
                           "--device", "cpu", "--budget-s", "0"]) == 0
    report = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert report["rows"] == [] and len(report["skipped"]) == 3


def test_bench_gpu_records_a_failing_case_and_check_and_goes_on(tiny_dir: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture
                                                               ) -> None:
    """An injected failure in one case and a kernel check that raises (as an OOM or a compile
    error would): both recorded with their errors, every other case measured, the JSON and
    table written; the JSON says the compiled graphs' kind and the timeout to run under."""
    monkeypatch.setenv("PROMPTARTISAN_TINY_DIR", str(tiny_dir))

    def check_fails(*_: object) -> None:
        raise torch.cuda.OutOfMemoryError("no memory for the check")

    monkeypatch.setattr(bench_gpu, "_check_kernels", check_fails)
    assert bench_gpu.main(["--out", str(tmp_path), "--arch", "tiny", "--size", "64", "--steps",
                           "1", "--regions", "1,2", "--sequential", "1", "--repeat", "1",
                           "--device", "cpu", "--compile-backend", "eager", "--budget-s", "420",
                           "--inject-failure", "eager:single:2"]) == 0
    report = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert [(f.get("step"), f.get("case"), f.get("n")) for f in report["failed"]] == [
        ("check", None, None), (None, "single", 2)]
    assert "OutOfMemoryError: no memory for the check" in report["failed"][0]["error"]
    assert "injected failure" in report["failed"][1]["error"]
    assert [(row["mode"], row["case"], row["n"]) for row in report["rows"]] == [
        ("eager", "stock", 1), ("eager", "single", 1), ("eager", "sequential", 1),
        ("compiled", "stock", 1), ("compiled", "sequential", 1), ("compiled", "single", 1),
        ("compiled", "single", 2)]
    assert report["compile"] == {"backend": "eager", "dynamic": False}
    assert report["timeout_s"] == 600
    assert "timeout 600 python -m promptartisan.engine.bench_gpu" in capsys.readouterr().out
    assert "failed: RuntimeError: injected failure" in (tmp_path / "bench_gpu.md").read_text()


def test_bench_gpu_stops_timed_runs_at_the_budget(tiny_dir: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The budget runs out during a case's warm-up: its timed runs are not started."""
    monkeypatch.setenv("PROMPTARTISAN_TINY_DIR", str(tiny_dir))
    clock = iter(range(0, 10**6, 100))  # each reading of the clock 100 s later
    monkeypatch.setattr(bench_gpu.time, "perf_counter", lambda: float(next(clock)))
    assert bench_gpu.main(["--out", str(tmp_path), "--arch", "tiny", "--size", "64", "--steps",
                           "1", "--regions", "1", "--sequential", "1", "--modes", "eager",
                           "--device", "cpu", "--budget-s", "450"]) == 0
    report = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert report["rows"] == []
    first = report["skipped"][0]
    assert first.pop("warmup_s") >= 100  # the clock read at least once more within the edit
    assert first == {"mode": "eager", "case": "stock", "n": 1,
                     "reason": "time budget after the warm-up"}
    assert [s["reason"] for s in report["skipped"][1:]] == ["time budget"] * 2


@pytest.mark.filterwarnings("ignore")
def test_the_flex_stream_compiles_once_per_padded_length(tiny_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The device run's stream of 12 aspect ratios through the UNet's flex self-attention, here
    through the compiled path on the CPU (graphs captured, run as they are): one compile per
    padded length, fewer than the lengths, and the dense mask's attention."""
    monkeypatch.setenv("PROMPTARTISAN_TINY_DIR", str(tiny_dir))
    counted = flex.CompiledFlex(backend=lambda graph, inputs: graph.forward, devices=("cpu",))
    monkeypatch.setattr(flex, "FLEX", counted)
    pipe = bench_gpu._pipeline("tiny", torch.device("cpu"), torch.float32)
    torch._dynamo.reset()
    try:
        stream = bench_gpu._flex_stream(pipe, 512, torch.device("cpu"))
    finally:
        torch._dynamo.reset()
    assert stream["fused"] and stream["requests"] == 12
    assert stream["compiles"] == counted.compiles == len(stream["padded_lengths"]) >= 2
    assert len(stream["lengths"]) > len(stream["padded_lengths"])
    assert stream["flex_vs_mask_max_abs"] <= 1e-5


def test_bench_gpu_rejects_bad_arguments() -> None:
    for argv in (["--out", "x", "--regions", "0"], ["--out", "x", "--modes", "fast"], []):
        with pytest.raises(SystemExit):
            bench_gpu.main(argv)

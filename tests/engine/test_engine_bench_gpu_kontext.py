"""bench_gpu's FLUX.1 Kontext memory cases, run on the tiny transformer on the CPU (a smoke run,
not a timing test): each case is its own row, and a case that fails loses no other."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptartisan.engine import bench_gpu, bench_gpu_kontext


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore")
def test_each_kontext_case_is_recorded_and_a_failure_loses_no_other(
        tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTARTISAN_TINY_DIR", str(tiny_dir))
    prepare = bench_gpu_kontext.prepare

    def offload_fails(case, pipe, device):
        if case == "offload":
            raise RuntimeError("CUDA out of memory (faked)")
        prepare(case, pipe, device)

    monkeypatch.setattr(bench_gpu_kontext, "prepare", offload_fails)
    assert bench_gpu.main(["--out", str(tmp_path), "--arch", "kontext", "--size", "64",
                           "--steps", "1", "--device", "cpu", "--kontext-transformer", "tiny",
                           "--kontext-cases", "none,offload,int8,group-offload"]) == 0
    rows = json.loads((tmp_path / "bench_gpu_kontext.json").read_text())["rows"]
    assert [row["case"] for row in rows] == ["none", "offload", "int8", "group-offload"]
    assert rows[1]["error"] == "RuntimeError: CUDA out of memory (faked)"
    for row in (rows[0], rows[2], rows[3]):
        assert row["edit_s"] > 0 and "error" not in row
        assert row["transformer_parameters"] > 0


def test_unknown_kontext_cases_are_refused() -> None:
    with pytest.raises(SystemExit):
        bench_gpu.main(["--out", "x", "--arch", "kontext", "--kontext-cases", "swap"])

"""The memory benchmark runs end to end (a small upload, so it is quick) and prints its row."""

from __future__ import annotations

import pytest

from promptartisan.agent.bench_memory import main


@pytest.mark.slow
def test_the_memory_benchmark_prints_an_edit_row(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--size", "96", "--case", "mask"]) == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    assert header.split()[:3] == ["case", "size", "kind"]
    case, size, kind, baseline, peak, edit, seconds = row.split()
    assert (case, size, kind) == ("mask", "96×96", "edit")
    assert int(peak) >= int(baseline) > 0 and int(edit) == int(peak) - int(baseline)
    assert float(seconds) > 0

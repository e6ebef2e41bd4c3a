"""The runner with injected fake methods: same seed for every method, every output written,
failures reported while the rest goes on."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from promptartisan.agent.benchmarks import Benchmark, BenchRegion, parse_benchmark
from promptartisan.agent.evaluation import (
    CaseResult,
    EvalReport,
    case_seed,
    comparison_grid,
    evaluate,
    summary_markdown,
)
from promptartisan.settings import Settings
from promptartisan.tools.metrics import PSNR_CAP_DB, ClipScorer, PickScorer

COLUMNS = ["case", "method", "clip_t", "clip_region", "pickscore", "bg_psnr", "bg_ssim",
           "seconds"]


@pytest.fixture(scope="module")
def scorers(tiny_dir: Path) -> tuple[ClipScorer, PickScorer]:
    settings = Settings(tiny=True, tiny_dir=tiny_dir, device="cpu", dtype="float32")
    return ClipScorer.load(settings), PickScorer.load(settings)


@pytest.fixture(scope="module")
def bench() -> Benchmark:
    data = {"name": "fake-bench", "cases": [
        {"id": "astro/face", "image": "skimage:astronaut", "caption_after": "an astronaut",
         "regions": [{"mask": {"polygons": [[[190, 80], [255, 80], [250, 170], [195, 170]]]},
                      "prompt": "give her sunglasses"},
                     {"mask": {"polygons": [[[0, 0], [90, 0], [90, 300], [0, 300]]]},
                      "prompt": "make the flag green", "order": 1}]},
        {"id": "cat", "image": "skimage:chelsea", "caption_after": "a cat with blue eyes",
         "regions": [{"mask": {"polygons": [[[140, 90], [205, 90], [205, 145], [140, 145]]]},
                      "prompt": "make the eye blue", "group": "eyes"},
                     {"mask": {"polygons": [[[295, 110], [345, 110], [345, 160], [295, 160]]]},
                      "prompt": "make the eye blue", "group": "eyes"}]},
    ]}
    return parse_benchmark(data, Path("."), "fake.json")


def identity(image: Image.Image, regions: Sequence[BenchRegion], seed: int) -> Image.Image:
    return image.copy()


def paint(image: Image.Image, regions: Sequence[BenchRegion], seed: int) -> Image.Image:
    """Red inside every mask, untouched elsewhere: perfect background preservation."""
    array = np.asarray(image).copy()
    for region in regions:
        array[region.mask] = (255, 0, 0)
    return Image.fromarray(array)


def repaint_all(image: Image.Image, regions: Sequence[BenchRegion], seed: int) -> Image.Image:
    """Changes the whole image, at another size: the runner resizes it back."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))


def broken(image: Image.Image, regions: Sequence[BenchRegion], seed: int) -> Image.Image:
    raise RuntimeError("out of memory, pretend")


def read_rows(out: Path) -> list[dict[str, str]]:
    with (out / "results.csv").open(encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        return list(reader)


@pytest.mark.slow
def test_every_output_is_written_and_failures_dont_stop_the_run(
        bench: Benchmark, scorers: tuple[ClipScorer, PickScorer], tmp_path: Path) -> None:
    methods = {"identity": identity, "paint": paint, "repaint": repaint_all, "broken": broken}
    report = evaluate(bench, methods, tmp_path, *scorers, size=128, progress=False)
    rows = read_rows(tmp_path)
    assert [(r["case"], r["method"]) for r in rows] == [
        (case, method) for case in ("astro/face", "cat") for method in ("identity", "paint",
                                                                        "repaint")]
    assert len(report.failures) == 2 and all("out of memory" in f for f in report.failures)
    for row in rows:
        assert all(math.isfinite(float(row[c])) for c in COLUMNS[2:])
        if row["method"] in ("identity", "paint"):
            assert float(row["bg_psnr"]) == PSNR_CAP_DB and float(row["bg_ssim"]) == 1.0
        else:
            assert float(row["bg_psnr"]) < 20
    for case in ("astro/face", "cat"):
        total = sum(float(r["pickscore"]) for r in rows if r["case"] == case)
        assert total == pytest.approx(1.0, abs=2e-4)  # 4-decimal rounding in the CSV
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "| identity | 2 |" in summary and "## Failures" in summary
    assert "method 'broken'" in summary
    assert (tmp_path / "plot.png").stat().st_size > 0
    for name in ("astro_face", "cat"):
        grid = Image.open(tmp_path / "grids" / f"{name}.png")
        assert grid.width > 4 * 128  # source + three results
    assert Image.open(tmp_path / "images" / "cat" / "repaint.png").size == (128, 88)


def test_every_method_gets_the_same_seed_per_case(
        bench: Benchmark, scorers: tuple[ClipScorer, PickScorer], tmp_path: Path) -> None:
    seen: dict[str, list[tuple[str, int]]] = {}

    def recorder(name: str):
        def run(image: Image.Image, regions: Sequence[BenchRegion], seed: int) -> Image.Image:
            seen.setdefault(name, []).append((regions[0].prompt, seed))
            return image
        return run

    evaluate(bench, {"a": recorder("a"), "b": recorder("b")}, tmp_path, *scorers, size=64,
             seed=7, warmup=False, progress=False)
    assert seen["a"] == seen["b"]
    assert [s for _, s in seen["a"]] == [case_seed(7, "astro/face"), case_seed(7, "cat")]
    assert case_seed(7, "cat") != case_seed(8, "cat")


def test_a_case_where_every_method_fails_is_reported(
        bench: Benchmark, scorers: tuple[ClipScorer, PickScorer], tmp_path: Path) -> None:
    def cat_breaks(image: Image.Image, regions: Sequence[BenchRegion], seed: int) -> Image.Image:
        if regions[0].group == "eyes":
            raise ValueError("bad mask")
        return image

    report = evaluate(bench, {"x": cat_breaks}, tmp_path, *scorers, size=64, progress=False)
    assert [row.case for row in report.rows] == ["astro/face"]
    assert report.failures == ["case 'cat', method 'x': ValueError: bad mask"]
    assert not (tmp_path / "grids" / "cat.png").exists()


def test_no_methods_is_an_error(bench: Benchmark, scorers: tuple[ClipScorer, PickScorer],
                                tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no methods"):
        evaluate(bench, {}, tmp_path, *scorers)


def test_summary_means_ignore_missing_values() -> None:
    nan = float("nan")
    report = EvalReport(bench="b", rows=[
        CaseResult("c1", "m", 20.0, 10.0, 0.5, PSNR_CAP_DB, 1.0, 2.0),
        CaseResult("c2", "m", 30.0, 20.0, 0.7, nan, nan, 4.0),
    ])
    assert report.means()["m"] == pytest.approx({"cases": 2, "clip_t": 25.0, "clip_region": 15.0,
                                                 "pickscore": 0.6, "bg_psnr": PSNR_CAP_DB,
                                                 "bg_ssim": 1.0, "seconds": 3.0})
    text = summary_markdown(report, ["a note"])
    assert "| m | 2 | 25.00 | 15.00 | 0.6000 | 100.00 | 1.0000 | 3.00 |" in text
    assert "a note" in text


def test_grid_has_a_panel_per_method(bench: Benchmark) -> None:
    case = bench.cases[1].at_size(64)
    grid = comparison_grid(case, {"one": case.image, "two": case.image})
    assert grid.width == 3 * (256 + 6) + 6  # panels upscaled to 256 px for legibility

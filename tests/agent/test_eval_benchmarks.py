"""Benchmark files: mie-lite is complete and valid; malformed cases are refused, by name."""

from __future__ import annotations

import copy
import importlib.resources
import json
import socket
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from promptartisan.agent.benchmarks import (
    MAX_REGIONS,
    SKIMAGE_PHOTOS,
    BenchmarkError,
    load_benchmark,
    load_photo,
    parse_benchmark,
)
from promptartisan.tools.metrics import background_mask, default_dilation

SQUARE = [[10, 10], [40, 10], [40, 40], [10, 40]]


def mie_lite_json() -> dict[str, Any]:
    resource = importlib.resources.files("promptartisan.agent") / "benchmarks" / "mie-lite.json"
    return json.loads(resource.read_text(encoding="utf-8"))


@pytest.mark.slow
def test_mie_lite_meets_its_brief() -> None:
    bench = load_benchmark("mie-lite")
    assert bench.name == "mie-lite"
    assert len(bench.cases) >= 12
    assert all(2 <= len(case.regions) <= 4 for case in bench.cases)
    assert sum(case.overlapping for case in bench.cases) >= 3
    assert sum(case.shared_group for case in bench.cases) >= 2
    assert len({case.id for case in bench.cases}) == len(bench.cases)
    for case in bench.cases:
        assert case.caption_after and all(r.prompt for r in case.regions)
        kept = background_mask([r.mask for r in case.regions], default_dilation(case.image.size))
        assert kept.mean() > 0.03, case.id  # some background is left to measure
        for i, a in enumerate(case.regions):
            assert 0.001 < a.mask.mean() < 0.8, (case.id, a.prompt)
            for b in case.regions[i + 1:]:
                if (a.mask & b.mask).any():  # overlaps are resolved by a distinct order
                    assert a.order != b.order, (case.id, a.prompt, b.prompt)


def test_mie_lite_uses_only_bundled_photos_and_polygons() -> None:
    data = mie_lite_json()
    photos = {case["image"].removeprefix("skimage:") for case in data["cases"]}
    assert all(case["image"].startswith("skimage:") for case in data["cases"])
    assert photos <= set(SKIMAGE_PHOTOS)
    assert len(photos) >= 6
    assert all("polygons" in r["mask"] for case in data["cases"] for r in case["regions"])


def test_bundled_photos_load_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each is inside scikit-image's wheel: nothing is fetched (pooch would need a socket)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for name in SKIMAGE_PHOTOS:
        photo = load_photo(f"skimage:{name}", Path("."))
        assert photo.mode == "RGB" and min(photo.size) >= 256, name


def test_missing_scikit_image_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "skimage", None)
    with pytest.raises(BenchmarkError, match="pip install scikit-image"):
        load_photo("skimage:astronaut", Path("."))


def write_bench(folder: Path, cases: list[dict[str, Any]]) -> Path:
    Image.new("RGB", (64, 48), "gray").save(folder / "photo.png")
    path = folder / "bench.json"
    path.write_text(json.dumps({"name": "mine", "cases": cases}), encoding="utf-8")
    return path


def good_case(case_id: str = "one") -> dict[str, Any]:
    return {"id": case_id, "image": "photo.png", "caption_after": "a red square",
            "regions": [{"mask": {"polygons": [SQUARE]}, "prompt": "make it red",
                         "group": "g", "order": 1}]}


def test_a_file_benchmark_with_polygons_and_a_mask_file(tmp_path: Path) -> None:
    mask = np.zeros((48, 64), np.uint8)
    mask[5:20, 30:60] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    second = good_case("two")
    second["regions"].append({"mask": {"file": "mask.png"}, "prompt": "add a hat"})
    bench = load_benchmark(write_bench(tmp_path, [good_case(), second]))
    assert [c.id for c in bench.cases] == ["one", "two"]
    region = bench.cases[0].regions[0]
    assert region.mask.shape == (48, 64) and region.mask[10:40, 10:40].all()
    assert region.mask.sum() == 31 * 31 and (region.group, region.order) == ("g", 1)
    assert (bench.cases[1].regions[1].mask == (mask > 0)).all()
    assert bench.cases[1].overlapping
    assert bench.select(["two"]).cases == (bench.cases[1],)
    with pytest.raises(BenchmarkError, match="no case nope"):
        bench.select(["nope"])


def test_at_size_resizes_image_and_masks(tmp_path: Path) -> None:
    case = load_benchmark(write_bench(tmp_path, [good_case()])).cases[0]
    small = case.at_size(32)
    assert small.image.size == (32, 24)
    assert small.regions[0].mask.shape == (24, 32)
    assert small.regions[0].mask[6:19, 6:19].all() and not small.regions[0].mask[:4].any()


def edit(change: Any) -> list[dict[str, Any]]:
    case = good_case()
    change(case)
    return [case]


def set_region(key: str, value: Any) -> Any:
    return lambda case: case["regions"][0].__setitem__(key, value)


MALFORMED = {
    "two-point polygon": (set_region("mask", {"polygons": [[[1, 1], [5, 5]]]}),
                          "polygon 1 has 2 points; a polygon needs at least 3"),
    "point outside": (set_region("mask", {"polygons": [[[1, 1], [70, 5], [5, 5]]]}),
                      "point [70, 5] lies outside the 64×48 image"),
    "negative point": (set_region("mask", {"polygons": [[[-1, 1], [7, 5], [5, 9]]]}),
                       "lies outside"),
    "empty prompt": (set_region("prompt", "  "), "'prompt' must be a non-empty string"),
    "no prompt": (lambda c: c["regions"][0].pop("prompt"), "'prompt' must be"),
    "no regions": (lambda c: c.__setitem__("regions", []), "needs 1 to 8 regions, has 0"),
    "too many regions": (lambda c: c.__setitem__("regions", c["regions"] * (MAX_REGIONS + 1)),
                         "needs 1 to 8 regions, has 9"),
    "no caption": (lambda c: c.pop("caption_after"), "'caption_after' must be"),
    "typo": (set_region("promt", "x"), "unknown field 'promt'"),
    "both masks": (set_region("mask", {"polygons": [SQUARE], "file": "m.png"}), "'mask' must be"),
    "degenerate polygon": (set_region("mask", {"polygons": [[[5, 5], [9, 9], [20, 20]]]}),
                           "polygon 1 encloses no area"),
    "point not a pair": (set_region("mask", {"polygons": [[[5, 5], [9], [20, 2]]]}),
                         "point [9] is not [x, y]"),
    "order text": (set_region("order", "top"), "'order' must be an integer"),
    "group list": (set_region("group", ["a"]), "'group' must be a string or an integer"),
    "missing mask file": (set_region("mask", {"file": "nope.png"}), "mask file 'nope.png'"),
    "unknown photo": (lambda c: c.__setitem__("image", "skimage:eagle"),
                      "unknown scikit-image photo"),
    "missing image": (lambda c: c.__setitem__("image", "missing.png"), "no such file"),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_cases_are_refused_naming_the_case(tmp_path: Path, kind: str) -> None:
    change, message = MALFORMED[kind]
    path = write_bench(tmp_path, edit(change))
    with pytest.raises(BenchmarkError) as info:
        load_benchmark(path)
    text = str(info.value)
    assert "case 'one'" in text and "bench.json" in text
    assert message in text


def test_mask_file_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    Image.new("L", (32, 32), 255).save(tmp_path / "mask.png")
    path = write_bench(tmp_path, edit(set_region("mask", {"file": "mask.png"})))
    with pytest.raises(BenchmarkError, match="mask file 'mask.png' is 32×32, the image is 64×48"):
        load_benchmark(path)


def test_an_empty_mask_file_is_refused(tmp_path: Path) -> None:
    Image.new("L", (64, 48), 0).save(tmp_path / "mask.png")
    path = write_bench(tmp_path, edit(set_region("mask", {"file": "mask.png"})))
    with pytest.raises(BenchmarkError, match="region 1: the mask covers no pixel"):
        load_benchmark(path)


def test_duplicate_ids_and_every_problem_are_reported_together(tmp_path: Path) -> None:
    bad = good_case("two")
    bad["regions"][0]["prompt"] = ""
    path = write_bench(tmp_path, [good_case(), good_case(), bad])
    with pytest.raises(BenchmarkError) as info:
        load_benchmark(path)
    text = str(info.value)
    assert "2 problem(s)" in text
    assert "case 'one': the id is used by an earlier case" in text
    assert "case 'two': region 1: 'prompt' must be a non-empty string" in text


@pytest.mark.parametrize("data, message", [
    ([], "expected an object with a 'cases' list"),
    ({"name": "x", "cases": []}, "has no cases"),
    ({"name": "", "cases": [good_case()]}, "'name' must be"),
    ({"cases": ["text"]}, "case 1: must be an object"),
    ({"cases": [{**good_case(), "id": ""}]}, "case 1: 'id' must be a non-empty string"),
])
def test_malformed_files_are_refused(tmp_path: Path, data: Any, message: str) -> None:
    write_bench(tmp_path, [])
    with pytest.raises(BenchmarkError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_benchmark(copy.deepcopy(data), tmp_path, "b.json")


def test_unknown_benchmarks_and_broken_json_are_refused(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="give one of mie-lite or the path"):
        load_benchmark("no-such-bench")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(BenchmarkError, match="not a readable JSON file"):
        load_benchmark(broken)

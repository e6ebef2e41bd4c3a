"""Benchmark files: cases of a photo, regions (mask + instruction) and the caption the edited
photo should match. Loaded and validated in one go, so a bad case is refused before any model
runs, with a message that names the case and the region.

Format (JSON)::

    {"name": "…",
     "cases": [{"id": "…", "image": "photo.png" | "skimage:astronaut",
                "regions": [{"mask": {"polygons": [[[x, y], …], …]} | {"file": "mask.png"},
                             "prompt": "…", "group": "…"?, "order": 0?}, …],
                "caption_after": "…"}]}

Paths are relative to the benchmark file. `skimage:NAME` names one of scikit-image's bundled
photos (`SKIMAGE_PHOTOS`; all ship inside its wheel, none is downloaded).
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from promptartisan.tools.images import InvalidImageError, load_image, to_working_size

MAX_REGIONS = 8
BUILTIN = {"mie-lite": "mie-lite.json"}
# Photos inside scikit-image's wheel (checked offline); stereo_motorcycle gives its left view.
SKIMAGE_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "horse", "rocket",
                  "stereo_motorcycle")

CASE_KEYS = {"id", "image", "regions", "caption_after"}
REGION_KEYS = {"mask", "prompt", "group", "order"}


class BenchmarkError(ValueError):
    """A benchmark can't be used; the message lists every problem, each naming its case."""


@dataclass(frozen=True)
class BenchRegion:
    mask: np.ndarray  # bool, HxW, the size of the case's image
    prompt: str
    group: str | int | None = None
    order: int = 0


@dataclass(frozen=True)
class BenchCase:
    id: str
    image: Image.Image
    regions: tuple[BenchRegion, ...]
    caption_after: str

    @property
    def overlapping(self) -> bool:
        """Whether any two regions share a pixel (their `order` then decides)."""
        masks = [r.mask for r in self.regions]
        return any((a & b).any() for i, a in enumerate(masks) for b in masks[i + 1 :])

    @property
    def shared_group(self) -> bool:
        groups = [r.group for r in self.regions if r.group is not None]
        return len(groups) != len(set(groups))

    def at_size(self, long_side: int) -> BenchCase:
        """The case at the engine's working size: image resized, masks resized with it."""
        image = to_working_size(self.image, long_side)
        if image.size == self.image.size:
            return self
        regions = tuple(
            replace(r, mask=np.asarray(
                Image.fromarray(r.mask.astype(np.uint8) * 255).resize(
                    image.size, Image.Resampling.BILINEAR)) >= 128)
            for r in self.regions
        )
        return replace(self, image=image, regions=regions)


@dataclass(frozen=True)
class Benchmark:
    name: str
    cases: tuple[BenchCase, ...]

    def select(self, ids: Iterable[str]) -> Benchmark:
        """Only the cases named in `ids`, in the benchmark's order."""
        wanted = list(ids)
        known = {case.id for case in self.cases}
        unknown = [i for i in wanted if i not in known]
        if unknown:
            raise BenchmarkError(f"benchmark {self.name!r} has no case {', '.join(unknown)}; "
                                 f"its cases: {', '.join(sorted(known))}")
        return replace(self, cases=tuple(c for c in self.cases if c.id in set(wanted)))


def load_benchmark(spec: str | Path) -> Benchmark:
    """A built-in benchmark by name (`mie-lite`) or a benchmark JSON file."""
    if str(spec) in BUILTIN:
        resource = importlib.resources.files("promptartisan.agent") / "benchmarks"
        with importlib.resources.as_file(resource / BUILTIN[str(spec)]) as path:
            return _load_file(path)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise BenchmarkError(f"no benchmark {str(spec)!r}: give one of {', '.join(BUILTIN)} "
                             f"or the path of a benchmark JSON file")
    return _load_file(path)


def _load_file(path: Path) -> Benchmark:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchmarkError(f"{path}: not a readable JSON file ({exc})") from exc
    return parse_benchmark(data, base_dir=path.parent, source=path.name)


def parse_benchmark(data: Any, base_dir: Path, source: str = "benchmark") -> Benchmark:
    """Validate `data` (the parsed JSON) and build the benchmark; raise `BenchmarkError`
    listing every problem found."""
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise BenchmarkError(f"{source}: expected an object with a 'cases' list")
    name = data.get("name", source)
    if not isinstance(name, str) or not name.strip():
        raise BenchmarkError(f"{source}: 'name' must be a non-empty string")
    if not data["cases"]:
        raise BenchmarkError(f"{source}: the benchmark has no cases")
    problems: list[str] = []
    cases: list[BenchCase] = []
    seen: set[str] = set()
    photos: dict[str, Image.Image] = {}
    for index, raw in enumerate(data["cases"], start=1):
        label = f"case {index}"
        if isinstance(raw, dict) and isinstance(raw.get("id"), str) and raw["id"].strip():
            label = f"case {raw['id']!r}"

        def report(message: str, label: str = label) -> None:
            problems.append(f"{label}: {message}")

        case = _parse_case(raw, base_dir, photos, seen, report)
        if case is not None:
            cases.append(case)
    if problems:
        raise BenchmarkError(f"{source}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    return Benchmark(name=name, cases=tuple(cases))


Report = Callable[[str], None]


def _parse_case(raw: Any, base_dir: Path, photos: dict[str, Image.Image], seen: set[str],
                report: Report) -> BenchCase | None:
    if not isinstance(raw, dict):
        report("must be an object")
        return None
    for key in sorted(set(raw) - CASE_KEYS):
        report(f"unknown field {key!r} (known: {', '.join(sorted(CASE_KEYS))})")
    case_id = raw.get("id")
    if not isinstance(case_id, str) or not case_id.strip():
        report("'id' must be a non-empty string")
    elif case_id in seen:
        report("the id is used by an earlier case; ids must be unique")
    else:
        seen.add(case_id)
    caption = raw.get("caption_after")
    if not isinstance(caption, str) or not caption.strip():
        report("'caption_after' must be a non-empty string")
    image = _case_image(raw.get("image"), base_dir, photos, report)
    regions_raw = raw.get("regions")
    if not isinstance(regions_raw, list) or not 1 <= len(regions_raw) <= MAX_REGIONS:
        count = len(regions_raw) if isinstance(regions_raw, list) else "no"
        report(f"needs 1 to {MAX_REGIONS} regions, has {count}")
        return None
    if image is None:
        return None
    regions = []
    for number, region_raw in enumerate(regions_raw, start=1):

        def region_report(message: str, number: int = number) -> None:
            report(f"region {number}: {message}")

        region = _parse_region(region_raw, image.size, base_dir, region_report)
        if region is not None:
            regions.append(region)
    if len(regions) != len(regions_raw) or not isinstance(caption, str):
        return None
    return BenchCase(id=str(case_id), image=image, regions=tuple(regions),
                     caption_after=caption.strip())


def _case_image(ref: Any, base_dir: Path, photos: dict[str, Image.Image],
                report: Report) -> Image.Image | None:
    if not isinstance(ref, str) or not ref.strip():
        report("'image' must be a path or 'skimage:NAME'")
        return None
    if ref not in photos:
        try:
            photos[ref] = load_photo(ref, base_dir)
        except BenchmarkError as exc:
            report(str(exc))
            return None
    return photos[ref]


def load_photo(ref: str, base_dir: Path) -> Image.Image:
    """`skimage:NAME` → that bundled photo as RGB; anything else → the image file at
    `base_dir / ref`."""
    if ref.startswith("skimage:"):
        name = ref.removeprefix("skimage:")
        if name not in SKIMAGE_PHOTOS:
            raise BenchmarkError(f"image {ref!r}: unknown scikit-image photo; bundled ones: "
                                 f"{', '.join(SKIMAGE_PHOTOS)}")
        try:
            from skimage import data
        except ImportError:
            raise BenchmarkError(f"image {ref!r} is one of scikit-image's photos, and "
                                 f"scikit-image is not installed: pip install scikit-image"
                                 ) from None
        array = getattr(data, name)()
        if isinstance(array, tuple):  # stereo pairs: (left, right, disparity)
            array = array[0]
        array = np.asarray(array)
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        return Image.fromarray(array).convert("RGB")
    try:
        return load_image(base_dir / ref)
    except InvalidImageError as exc:
        raise BenchmarkError(f"image {ref!r}: {exc}") from exc


def _parse_region(raw: Any, size: tuple[int, int], base_dir: Path,
                  report: Report) -> BenchRegion | None:
    if not isinstance(raw, dict):
        report("must be an object")
        return None
    for key in sorted(set(raw) - REGION_KEYS):
        report(f"unknown field {key!r} (known: {', '.join(sorted(REGION_KEYS))})")
    ok = True
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        report("'prompt' must be a non-empty string")
        ok = False
    group = raw.get("group")
    if group is not None and (isinstance(group, bool) or not isinstance(group, (str, int))):
        report("'group' must be a string or an integer")
        ok = False
    order = raw.get("order", 0)
    if isinstance(order, bool) or not isinstance(order, int):
        report("'order' must be an integer")
        ok = False
    mask = _parse_mask(raw.get("mask"), size, base_dir, report)
    if mask is None or not ok:
        return None
    return BenchRegion(mask=mask, prompt=str(prompt).strip(), group=group, order=order)


def _parse_mask(raw: Any, size: tuple[int, int], base_dir: Path,
                report: Report) -> np.ndarray | None:
    if not isinstance(raw, dict) or len(raw) != 1 or not {"polygons", "file"} & set(raw):
        report("'mask' must be {\"polygons\": [...]} or {\"file\": \"mask.png\"}")
        return None
    mask = _polygons(raw["polygons"], size, report) if "polygons" in raw \
        else _mask_file(raw["file"], size, base_dir, report)
    if mask is not None and not mask.any():
        report("the mask covers no pixel")
        return None
    return mask


def _polygons(polygons: Any, size: tuple[int, int], report: Report) -> np.ndarray | None:
    if not isinstance(polygons, list) or not polygons:
        report("'polygons' must be a non-empty list of polygons")
        return None
    width, height = size
    canvas = Image.new("L", size, 0)
    draw = ImageDraw.Draw(canvas)
    ok = True
    for number, polygon in enumerate(polygons, start=1):
        if not isinstance(polygon, list) or len(polygon) < 3:
            count = len(polygon) if isinstance(polygon, list) else "no"
            report(f"polygon {number} has {count} points; a polygon needs at least 3")
            ok = False
            continue
        points = []
        for point in polygon:
            if (not isinstance(point, list) or len(point) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                               for v in point)):
                report(f"polygon {number}: point {point!r} is not [x, y]")
                ok = False
                break
            x, y = point
            if not (0 <= x <= width and 0 <= y <= height):
                report(f"polygon {number}: point [{x}, {y}] lies outside the "
                       f"{width}×{height} image")
                ok = False
                break
            points.append((float(x), float(y)))
        else:
            xs, ys = np.array(points).T
            if abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))) / 2 < 1:
                report(f"polygon {number} encloses no area")
                ok = False
                continue
            draw.polygon(points, fill=255, outline=255)
    return np.asarray(canvas) >= 128 if ok else None


def _mask_file(ref: Any, size: tuple[int, int], base_dir: Path,
               report: Report) -> np.ndarray | None:
    if not isinstance(ref, str) or not ref.strip():
        report("mask 'file' must be a path")
        return None
    path = base_dir / ref
    try:
        with Image.open(path) as image:
            image.load()
            mask = image.convert("L")
    except (OSError, ValueError) as exc:
        report(f"mask file {ref!r} can't be read ({exc})")
        return None
    if mask.size != size:
        report(f"mask file {ref!r} is {mask.size[0]}×{mask.size[1]}, the image is "
               f"{size[0]}×{size[1]}")
        return None
    return np.asarray(mask) >= 128

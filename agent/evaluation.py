"""The benchmark runner: every method on every case with the same seed, timed, scored, and
written out as `results.csv`, `summary.md`, `plot.png` and one comparison grid per case.

A method is any callable `(image, regions, seed) -> image`; `engine_methods` builds the real
ones (the single pass and the two sequential baselines) around one loaded pipeline, and tests
inject fakes. A case or method that fails is reported and the run goes on.
"""

from __future__ import annotations

import csv
import inspect
import math
import re
import sys
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from tqdm.auto import tqdm

from promptartisan.agent.benchmarks import BenchCase, Benchmark, BenchRegion
from promptartisan.settings import Settings
from promptartisan.tools.metrics import (
    PSNR_CAP_DB,
    ClipScorer,
    PickScorer,
    background_preservation,
    default_dilation,
)

METHODS = ("single", "sequential", "sequential-masked")
METRICS = ("clip_t", "clip_region", "pickscore", "bg_psnr", "bg_ssim", "seconds")
LABELS = {"clip_t": "CLIP-T ↑", "clip_region": "CLIP-T region ↑", "pickscore": "PickScore ↑",
          "bg_psnr": "BG PSNR dB ↑", "bg_ssim": "BG SSIM ↑", "seconds": "s/case ↓"}
COLOURS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (255, 225, 25)]

Method = Callable[[Image.Image, Sequence[BenchRegion], int], Image.Image]


@dataclass
class CaseResult:
    """One row of results.csv: one method on one case."""

    case: str
    method: str
    clip_t: float
    clip_region: float
    pickscore: float
    bg_psnr: float
    bg_ssim: float
    seconds: float


@dataclass
class EvalReport:
    bench: str
    rows: list[CaseResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def means(self) -> dict[str, dict[str, float]]:
        """Method → metric → mean over the cases it finished (NaN where none has a value)."""
        table: dict[str, dict[str, float]] = {}
        for method in dict.fromkeys(row.method for row in self.rows):
            mine = [row for row in self.rows if row.method == method]
            table[method] = {"cases": float(len(mine))}
            for metric in METRICS:
                values = [getattr(row, metric) for row in mine]
                finite = [v for v in values if not math.isnan(v)]
                table[method][metric] = float(np.mean(finite)) if finite else float("nan")
        return table


def case_seed(base: int, case_id: str) -> int:
    """Every method gets this seed on this case; it depends on the id, not the case's position,
    so a run on a subset (`--cases`) reproduces the full run's images."""
    return (base + zlib.crc32(case_id.encode())) % 2**31


def evaluate(bench: Benchmark, methods: Mapping[str, Method], out: Path, clip: ClipScorer,
             pick: PickScorer, size: int = 512, seed: int = 0, notes: Sequence[str] = (),
             warmup: bool = True, progress: bool = True) -> EvalReport:
    """Run `methods` over `bench` at working size `size` and write every output under `out`.

    `warmup` runs the first method once on the first case, untimed, so one-off costs (kernel
    selection, lazy allocation) don't land on whichever method happens to go first.
    """
    if not methods:
        raise ValueError("no methods to evaluate")
    out.mkdir(parents=True, exist_ok=True)
    (out / "grids").mkdir(exist_ok=True)
    report = EvalReport(bench=bench.name)
    cases = [case.at_size(size) for case in bench.cases]
    if warmup and cases:
        first = next(iter(methods.values()))
        try:
            first(cases[0].image, cases[0].regions, case_seed(seed, cases[0].id))
        except Exception:  # the timed run reports it
            pass
    bar = tqdm(total=len(cases) * len(methods), desc=f"eval {bench.name}", unit="run",
               disable=not progress, file=sys.stderr)
    for case in cases:
        results: dict[str, Image.Image] = {}
        seconds: dict[str, float] = {}
        for name, method in methods.items():
            bar.set_postfix_str(f"{case.id} · {name}")
            start = time.perf_counter()
            try:
                image = method(case.image, case.regions, case_seed(seed, case.id))
                seconds[name] = time.perf_counter() - start
                results[name] = _fit(image, case.image.size)
                _save(results[name], out / "images" / _slug(case.id) / f"{_slug(name)}.png")
            except Exception as exc:
                _fail(report, bar, f"case {case.id!r}, method {name!r}: {_describe(exc)}")
            bar.update()
        if not results:
            continue
        try:
            rows = score_case(case, results, seconds, clip, pick)
            comparison_grid(case, results, {r.method: r for r in rows}).save(
                out / "grids" / f"{_slug(case.id)}.png")
        except Exception as exc:
            _fail(report, bar, f"case {case.id!r}: scoring failed: {_describe(exc)}")
            continue
        report.rows.extend(rows)
    bar.close()
    write_results(report, out, notes, dilation_note(size))
    return report


def score_case(case: BenchCase, results: Mapping[str, Image.Image],
               seconds: Mapping[str, float], clip: ClipScorer, pick: PickScorer
               ) -> list[CaseResult]:
    """Every metric for each method's result on `case` (PickScore's softmax is across them)."""
    names = list(results)
    images = [results[name] for name in names]
    masks = [region.mask for region in case.regions]
    prompts = [region.prompt for region in case.regions]
    clip_t = clip.scores(images, [case.caption_after] * len(images))
    picks = pick.probabilities(case.caption_after, images)
    rows = []
    for index, name in enumerate(names):
        region = float(np.mean(clip.region_scores(images[index], masks, prompts)))
        bg_psnr, bg_ssim = background_preservation(case.image, images[index], masks)
        rows.append(CaseResult(case.id, name, float(clip_t[index]), region,
                               float(picks[index]), bg_psnr, bg_ssim, seconds[name]))
    return rows


def write_results(report: EvalReport, out: Path, notes: Sequence[str] = (),
                  dilation: str = "") -> None:
    """results.csv, summary.md and plot.png from the report's rows."""
    with (out / "results.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        columns = [f.name for f in fields(CaseResult)]
        writer.writerow(columns)
        for row in report.rows:
            values = asdict(row)
            writer.writerow([values[c] if isinstance(values[c], str) else f"{values[c]:.4f}"
                             for c in columns])
    (out / "summary.md").write_text(summary_markdown(report, notes, dilation), encoding="utf-8")
    if report.rows:
        plot_means(report, out / "plot.png")


def summary_markdown(report: EvalReport, notes: Sequence[str] = (), dilation: str = "") -> str:
    """The means-per-method table with what each column means."""
    lines = [f"# {report.bench}: means per method", ""]
    lines += [f"{note}" for note in notes] + ([""] if notes else [])
    header = ["method", "cases"] + [LABELS[m] for m in METRICS]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, means in report.means().items():
        cells = [method, str(int(means["cases"]))] + [_cell(m, means[m]) for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "CLIP-T: 100 · cosine of CLIP's image and text embeddings, result against the case's "
        "caption_after; region: each region's padded crop against its own prompt, averaged. "
        "PickScore: the softmax of PickScore_v1's logits across the methods compared on each "
        "case (it sums to 1 per case, so it only means something next to the other methods). "
        f"BG: source against result outside the union of the masks dilated by {dilation}; "
        f"PSNR is capped at {PSNR_CAP_DB:.0f} dB (= unchanged). Seconds: wall time per case.",
    ]
    if report.failures:
        lines += ["", "## Failures", ""] + [f"- {failure}" for failure in report.failures]
    return "\n".join(lines) + "\n"


def dilation_note(size: int) -> str:
    return f"{default_dilation((size, size))} px at a {size} px long side (3 %, at least 8 px)"


def plot_means(report: EvalReport, path: Path) -> None:
    """A bar chart of each metric's mean per method (matplotlib, no display needed)."""
    from matplotlib.figure import Figure

    means = report.means()
    methods = list(means)
    figure = Figure(figsize=(4 * 3, 3.2 * 2), layout="constrained")
    axes = figure.subplots(2, 3).ravel()
    colours = [tuple(c / 255 for c in COLOURS[i % len(COLOURS)]) for i in range(len(methods))]
    for axis, metric in zip(axes, METRICS, strict=True):
        values = [means[m][metric] for m in methods]
        bars = axis.bar(methods, [0 if math.isnan(v) else v for v in values], color=colours)
        axis.bar_label(bars, labels=[_cell(metric, v) for v in values], fontsize=8)
        axis.set_title(LABELS[metric])
        axis.margins(y=0.15)
        axis.tick_params(axis="x", labelrotation=20, labelsize=8)
    figure.suptitle(f"{report.bench}: means per method")
    figure.savefig(path, dpi=100)


def comparison_grid(case: BenchCase, results: Mapping[str, Image.Image],
                    rows: Mapping[str, CaseResult] | None = None) -> Image.Image:
    """Source | each method's result, masks outlined in each region's colour, labelled; the
    regions' prompts listed underneath in the same colours."""
    scale = max(1, math.ceil(256 / max(case.image.size)))
    panels = [("source", case.image)] + list(results.items())
    width, height = case.image.width * scale, case.image.height * scale
    font = ImageFont.load_default(size=14)
    small = ImageFont.load_default(size=12)
    band, gap = 40, 6
    legend = 18 * len(case.regions) + 28
    grid = Image.new("RGB", (len(panels) * (width + gap) + gap, band + height + legend), "white")
    draw = ImageDraw.Draw(grid)
    outlines = [_outline(region.mask, scale) for region in case.regions]
    for index, (name, image) in enumerate(panels):
        x = gap + index * (width + gap)
        panel = image.resize((width, height), Image.Resampling.NEAREST)
        for outline, colour in zip(outlines, COLOURS, strict=False):
            panel.paste(colour, mask=outline)
        grid.paste(panel, (x, band))
        draw.text((x, 4), name, fill="black", font=font)
        row = (rows or {}).get(name)
        if row is not None:
            draw.text((x, 22), f"CLIP-T {row.clip_t:.1f} · Pick {row.pickscore:.2f}",
                      fill="dimgray", font=small)
    y = band + height + 6
    draw.text((gap, y), f"{case.id}: {case.caption_after}", fill="black", font=small)
    for number, (region, colour) in enumerate(zip(case.regions, COLOURS, strict=False), 1):
        extra = "".join([f", group {region.group}" if region.group is not None else "",
                         f", order {region.order}" if region.order else ""])
        draw.text((gap, y + 18 * number), f"{number}. {region.prompt}{extra}", fill=colour,
                  font=small)
    return grid


def _outline(mask: np.ndarray, scale: int) -> Image.Image:
    """A 2-px outline of `mask` at `scale`, as a paste mask."""
    image = Image.fromarray(mask.astype(np.uint8) * 255)
    image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return image.filter(ImageFilter.FIND_EDGES).filter(ImageFilter.MaxFilter(3))


def engine_methods(names: Sequence[str], settings: Settings) -> dict[str, Method]:
    """The engine's methods, sharing one loaded pipeline: `single` (one PromptArtisan pass with
    every region), `sequential` (stock InstructPix2Pix once per region, on the whole image) and
    `sequential-masked` (one PromptArtisan pass per region)."""
    import torch

    from promptartisan import models
    from promptartisan.engine import Region, SequentialBaseline

    unknown = [name for name in names if name not in METHODS]
    if unknown:
        raise ValueError(f"unknown method {', '.join(unknown)}; known: {', '.join(METHODS)}")
    pipe = models.load_engine_on_device(settings)
    pipe.set_progress_bar_config(disable=True)
    runners = {"single": pipe, "sequential": SequentialBaseline(pipe),
               "sequential-masked": SequentialBaseline(pipe, masked=True)}
    guidance = (settings.guidance_scale if settings.guidance_scale is not None
                else pipe.default_guidance_scale)
    common = {"num_inference_steps": settings.steps, "guidance_scale": guidance}
    if "image_guidance_scale" in inspect.signature(pipe.__call__).parameters:  # not Kontext
        common["image_guidance_scale"] = settings.image_guidance_scale
    paste = {"preserve_background": settings.preserve_background}

    def method(name: str) -> Method:
        runner = runners[name]
        options = {**common, **(paste if name != "sequential" else {})}

        def run(image: Image.Image, regions: Sequence[BenchRegion], seed: int) -> Image.Image:
            # A CPU generator gives the same noise on every device.
            generator = torch.Generator("cpu").manual_seed(seed)
            engine_regions = [Region(r.mask, r.prompt, r.group, r.order) for r in regions]
            output = runner(image, engine_regions, generator=generator, **options)
            return output.images[0]

        return run

    return {name: method(name) for name in names}


def _fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    image = image.convert("RGB")
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def _save(image: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "case"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _fail(report: EvalReport, bar: tqdm, message: str) -> None:
    report.failures.append(message)
    bar.write(f"failed: {message}", file=sys.stderr)


def _cell(metric: str, value: float) -> str:
    if math.isnan(value):
        return "–"
    return {"clip_t": "{:.2f}", "clip_region": "{:.2f}", "pickscore": "{:.4f}",
            "bg_psnr": "{:.2f}", "bg_ssim": "{:.4f}", "seconds": "{:.2f}"}[metric].format(value)

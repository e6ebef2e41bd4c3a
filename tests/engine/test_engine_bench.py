"""`promptartisan bench engine` on the tiny models of each family (a smoke run, not a timing
test), and the full-size architectures it measures, built on the meta device so that no memory
is spent."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from promptartisan.engine.benchmark import bench_regions, sd15_pipeline, sdxl_pipeline
from promptartisan.ui import cli, cli_bench


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli_bench.register(parser.add_subparsers(dest="command"), cli.common_parser())
    return parser.parse_args(argv)


@pytest.mark.parametrize("arch", ["tiny", "tiny-sdxl"])
@pytest.mark.slow
def test_bench_engine_prints_table_and_writes_json_and_plot(
        tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], arch: str) -> None:
    monkeypatch.setenv("PROMPTARTISAN_TINY_DIR", str(tiny_dir))
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    args = parse(["bench", "engine", "--arch", arch, "--size", "64", "--steps", "1",
                  "--regions", "1,2", "--device", "cpu", "--json", str(out_json),
                  "--plot", str(out_png)])
    assert args.func(args) == 0
    rows = json.loads(out_json.read_text())
    assert [row["n"] for row in rows] == [1, 2]
    for row in rows:
        assert {"n", "stock_s", "single_s", "sequential_s", "speedup", "overhead",
                "peak_mb"} <= row.keys()
        assert row["speedup"] == pytest.approx(row["sequential_s"] / row["single_s"])
        assert row["overhead"] == pytest.approx(row["single_s"] / row["stock_s"])
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "speedup" in table and "overhead" in table
    assert "promptartisan.ui.cli_bench" in cli.COMMAND_MODULES


def test_bench_rejects_bad_region_counts() -> None:
    with pytest.raises(SystemExit):
        parse(["bench", "engine", "--regions", "1,x"])
    with pytest.raises(SystemExit):
        parse(["bench", "engine", "--regions", "0"])


def test_sd15_architecture_is_full_size_instruct_pix2pix() -> None:
    with torch.device("meta"):
        pipe = sd15_pipeline()
    assert pipe.unet.config.in_channels == 8 and pipe.unet.config.cross_attention_dim == 768
    assert pipe.vae_scale_factor == 8 and pipe.vae.config.scaling_factor == pytest.approx(0.18215)
    assert pipe.text_encoder.config.hidden_size == 768
    assert pipe.text_encoder.config.num_hidden_layers == 12
    millions = {name: sum(p.numel() for p in getattr(pipe, name).parameters()) / 1e6
                for name in ("unet", "vae", "text_encoder")}
    assert millions["unet"] == pytest.approx(859.5, abs=0.5)
    assert millions["vae"] == pytest.approx(83.7, abs=0.5)
    assert millions["text_encoder"] == pytest.approx(123.1, abs=0.5)


def test_sdxl_architecture_is_full_size_sdxl_instruct_pix2pix() -> None:
    with torch.device("meta"):
        pipe = sdxl_pipeline()
    config = pipe.unet.config
    assert config.in_channels == 8 and config.cross_attention_dim == 2048
    assert config.addition_embed_type == "text_time" and pipe.vae_scale_factor == 8
    assert pipe.vae.config.scaling_factor == pytest.approx(0.13025) and pipe.vae.config.force_upcast
    millions = {name: sum(p.numel() for p in getattr(pipe, name).parameters()) / 1e6
                for name in ("unet", "vae", "text_encoder", "text_encoder_2")}
    # SDXL base's 2567.46 M UNet with 4 more input channels in its first convolution.
    assert millions["unet"] == pytest.approx(2567.5, abs=0.5)
    assert millions["vae"] == pytest.approx(83.7, abs=0.5)
    assert millions["text_encoder"] == pytest.approx(123.1, abs=0.5)
    assert millions["text_encoder_2"] == pytest.approx(694.7, abs=0.5)


def test_bench_regions_are_disjoint_and_leave_background() -> None:
    for n in (1, 2, 4, 8):
        masks = [region.mask for region in bench_regions(n, 256)]
        assert len(masks) == n and all(mask.any() for mask in masks)
        assert sum(mask.astype(int) for mask in masks).max() == 1
        assert not sum(masks).all()

"""memory = auto's choice from faked device memory, the sizes it reads from a model's files,
and where the choice is shown (`models list`, the chat's settings panel)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from promptartisan import models
from promptartisan.engine.memory import (
    FULL_SIZE_PARAMETERS,
    GIB,
    choose_memory,
    component_bytes,
    stored_parameters,
)
from promptartisan.settings import Settings, SettingsError, load_settings
from promptartisan.tiny import write_tiny_models
from promptartisan.ui.cli import main


def kontext_bytes(quantize: str = "none") -> dict[str, float]:
    return component_bytes(FULL_SIZE_PARAMETERS["kontext"], torch.bfloat16, quantize, "kontext")


@pytest.mark.parametrize(("free_gib", "quantize", "mode"), [
    (80, "none", "none"),  # an H100: 31.7 GiB of weights and the allowance fit
    (32, "none", "offload"),  # a 5090: the 22.2 GiB transformer fits alone
    (24, "none", "group-offload"),  # a 4090/3090: not even the transformer with activations
    (16, "none", "group-offload"),
    (24, "int8", "none"),  # 8-bit: 11.1 GiB transformer, 4.6 GiB T5, 16.0 GiB in all
    (20, "int8", "offload"),
    (12, "int8", "group-offload"),
    (16, "nf4", "none"),  # NF4: 6.1 GiB transformer
    (12, "nf4", "offload"),
])
def test_auto_picks_kontexts_placement_from_the_free_memory(free_gib: float, quantize: str,
                                                            mode: str) -> None:
    choice = choose_memory("auto", "cuda", int(free_gib * GIB), kontext_bytes(quantize),
                           "kontext")
    assert choice.mode == mode
    assert f"{free_gib:.1f} GiB free on cuda" in choice.reason
    assert choice.tile_vae is (mode != "none")


def test_auto_keeps_sd15_on_an_8_gib_card_and_the_cpu_moves_nothing() -> None:
    sd15 = component_bytes(FULL_SIZE_PARAMETERS["sd15"], torch.float16, "none", "sd15")
    assert choose_memory("auto", "cuda", 8 * GIB, sd15, "sd15").mode == "none"
    assert choose_memory("auto", "cuda", int(3.3 * GIB), sd15, "sd15").mode == "offload"
    on_cpu = choose_memory("auto", "cpu", None, kontext_bytes(), "kontext")
    assert on_cpu.mode == "none" and "on cpu" in on_cpu.reason
    chosen = choose_memory("group-offload", "cuda", 80 * GIB, kontext_bytes(), "kontext")
    assert chosen.mode == "group-offload" and "(set)" in chosen.reason


@pytest.mark.slow
def test_sizes_come_from_the_files_headers(tiny_dir: Path) -> None:
    """The tiny Kontext's parameters per component, read from its safetensors headers, are
    the loaded components' own counts; a fp16 variant file beside them is not counted twice."""
    from diffusers import FluxTransformer2DModel

    folder = write_tiny_models(tiny_dir, ["flux-kontext"]) / "flux-kontext"
    counts = stored_parameters(folder)
    transformer = FluxTransformer2DModel.from_pretrained(str(folder), subfolder="transformer")
    assert counts["transformer"] == sum(p.numel() for p in transformer.parameters())
    assert set(counts) == {"transformer", "text_encoder", "text_encoder_2", "vae"}


def test_the_engine_memory_reads_the_devices_free_memory(tmp_path: Path, monkeypatch) -> None:
    """A Kontext folder without weights here: its full-size counts, against a faked CUDA device
    with 20 GiB free, give group offload; the reason names both figures."""
    (tmp_path / "model_index.json").write_text(json.dumps(
        {"_class_name": "FluxKontextPipeline", "transformer": ["diffusers",
                                                              "FluxTransformer2DModel"]}))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (20 * GIB, 24 * GIB))
    settings = Settings(instruct_pix2pix=str(tmp_path), device="cuda", dtype="bfloat16")
    choice = models.engine_memory(settings)
    assert choice.mode == "group-offload"
    assert "20.0 GiB free on cuda" in choice.reason and "31.7 GiB" in choice.reason


def test_models_list_says_how_the_engine_loads(tiny_dir: Path, capsys) -> None:
    lora = tiny_dir / "style.safetensors"
    code = main(["models", "list", "--tiny", "--memory", "offload", "--quantize", "int8",
                 "--lora", f"{lora}:0.75"])
    assert code == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("engine: memory offload (memory = offload (set)")
    assert "quantize int8" in line and f"LoRA {lora} × 0.75" in line


def test_bad_memory_settings_are_refused_with_the_setting_named() -> None:
    with pytest.raises(SettingsError, match="quantize .*int8.*gguf"):
        load_settings(overrides={"quantize": "int4"}, environ={})
    with pytest.raises(SettingsError, match="memory"):
        load_settings(overrides={"memory": "swap"}, environ={})
    assert load_settings(overrides={"quantize": "/m/kontext-Q8_0.gguf"}, environ={}).quantize \
        == "/m/kontext-Q8_0.gguf"


def test_the_memory_benchmark_tables_every_family_and_setting(tmp_path: Path, capsys) -> None:
    """Estimates only (the measured rows build full-size models): one row per family and
    setting, offload below none, and Kontext's int8 transformer half its bf16 size."""
    from promptartisan.engine import bench_engine_memory

    assert bench_engine_memory.main(["--json", str(tmp_path / "memory.json")]) == 0
    rows = json.loads((tmp_path / "memory.json").read_text())["estimates"]
    assert len(rows) == 3 * len(bench_engine_memory.SETTINGS)
    gib = {(r["family"], r["memory"], r["quantize"]): r["estimate_gib"] for r in rows}
    for family in ("sd15", "sdxl", "kontext"):
        assert gib[family, "group-offload", "none"] < gib[family, "offload", "none"] \
            < gib[family, "none", "none"]
    assert gib["kontext", "none", "none"] == 36.7
    assert "| kontext | offload | int8 | 16.1 GiB |" in capsys.readouterr().out

"""The single pass with the adapters people load, each through `models.load_engine_on_device`
as the Editor loads the engine: a random LoRA on the attention projections (PEFT), under model
CPU offload and group offload, on torchao int8 weights and on a GGUF transformer. With one
full-image region and the controls off it equals diffusers' stock pipeline on the same
components (LoRA included); with two regions, region 1 stays deaf to region 2's instruction
where the engine routes attention. Few-step: an LCM scheduler, Kontext at 8 steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import box_mask
from diffusers import FluxTransformer2DModel, LCMScheduler, UNet2DConditionModel
from engine_adapters import write_gguf_transformer, write_random_lora
from engine_families import stock_edit, tiny_engine, tiny_folder
from PIL import Image

from promptartisan import models
from promptartisan.engine import Region
from promptartisan.engine.adapters import Lora, load_loras, parse_lora
from promptartisan.settings import LoraSetting, Settings
from promptartisan.tiny import write_tiny_models

PROMPT = "turn the sky into a sunset"
SCALE = 0.8


def seed() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture(scope="module")
def kontext_folder(tiny_dir: Path) -> Path:
    return write_tiny_models(tiny_dir, ["flux-kontext"]) / "flux-kontext"


@pytest.fixture(scope="module")
def adapter_files(tiny_dir: Path, kontext_folder: Path, tmp_path_factory) -> dict[str, Path]:
    """A random LoRA per family, and the tiny Kontext transformer as a GGUF file."""
    out = tmp_path_factory.mktemp("adapters")
    transformer = FluxTransformer2DModel.from_pretrained(str(kontext_folder),
                                                         subfolder="transformer")
    files = {"kontext": write_random_lora(transformer, "kontext", out / "kontext"),
             "gguf": write_gguf_transformer(transformer, out / "kontext-Q8_0.gguf")}
    for family in ("sd15", "sdxl"):
        unet = UNet2DConditionModel.from_pretrained(str(tiny_folder(tiny_dir, family)),
                                                    subfolder="unet")
        files[family] = write_random_lora(unet, family, out / family)
    return files


def engine(folder: Path, lora: Path | None, **settings) -> object:
    """The engine as the settings load it (float32 on the CPU), quiet."""
    loras = [LoraSetting(path=lora, scale=SCALE)] if lora else []
    pipe = models.load_engine_on_device(Settings(instruct_pix2pix=str(folder), device="cpu",
                                                 dtype="float32", lora=loras, **settings))
    pipe.set_progress_bar_config(disable=True)
    return pipe


# Each placement diffusers has on a CPU-only machine: its hooks run (model CPU offload onloads
# to the CPU, group offload block by block), the quantized layers compute.
KONTEXT_SETUPS = {"plain": {}, "offload": {"memory": "offload"},
                  "group-offload": {"memory": "group-offload"}, "int8": {"quantize": "int8"},
                  "gguf": {}}


def kontext_stock(pipe, image: Image.Image, prompt: str, steps: int) -> np.ndarray:
    stock = pipe.stock_pipeline()
    stock.set_progress_bar_config(disable=True)
    tokens = len(stock.tokenizer_2(prompt).input_ids)
    width, height = image.size
    return stock(image=image, prompt=prompt, height=height, width=width, max_area=width * height,
                 _auto_resize=False, max_sequence_length=tokens, num_inference_steps=steps,
                 guidance_scale=2.5, generator=seed(), output_type="np").images


def off(pipe, image: Image.Image, regions: list[Region], steps: int, **kwargs) -> object:
    return pipe(image, regions, num_inference_steps=steps, guidance_scale=2.5, blend_steps=0,
                preserve_background=False, generator=seed(), **kwargs).images


@pytest.mark.parametrize("setup", list(KONTEXT_SETUPS))
@pytest.mark.filterwarnings("ignore")
@pytest.mark.slow
def test_kontext_with_a_lora_equals_stock_and_keeps_regions_apart(
        kontext_folder, adapter_files, small_photo, setup: str) -> None:
    settings = dict(KONTEXT_SETUPS[setup])
    if setup == "gguf":
        settings["quantize"] = str(adapter_files["gguf"])
    pipe = engine(kontext_folder, adapter_files["kontext"], **settings)
    width, height = small_photo.size
    steps = 8 if setup == "plain" else 2  # 8: a Turbo-style LoRA's step count
    edited = off(pipe, small_photo, [Region(np.ones((height, width), dtype=bool), PROMPT)],
                 steps, output_type="np")
    assert np.abs(edited - kontext_stock(pipe, small_photo, PROMPT, steps)).max() <= 1e-4
    if setup == "plain":  # the LoRA is in the computation
        bare = engine(kontext_folder, None)
        plain = off(bare, small_photo, [Region(np.ones((height, width), dtype=bool), PROMPT)],
                    steps, output_type="np")
        assert np.abs(plain - edited).max() > 1e-3
    # Two regions of different groups tiling the picture: region 1's tokens (the left half of
    # the 3 × 4 token grid) come out bit for bit the same whatever region 2 asks; they do move
    # with region 1's own instruction. Region 2's two instructions have one T5 length (8
    # tokens): a longer sequence would sum the same terms in another order.
    left, right = (box_mask(small_photo.size, (0, 0, width // 2, height)),
                   box_mask(small_photo.size, (width // 2, 0, width, height)))
    region_1 = np.arange(12).reshape(3, 4)[:, :2].flatten()

    def latents(first: str, second: str) -> torch.Tensor:
        regions = [Region(left, first, group=1), Region(right, second, group=2)]
        return off(pipe, small_photo, regions, 2, output_type="latent")[:, region_1]

    base = latents("make it red", "add snow")
    assert torch.equal(base, latents("make it red", "add a hat"))
    assert (base - latents("make it blue", "add snow")).abs().max() > 1e-4


UNET_SETUPS = {"plain": {}, "group-offload": {"memory": "group-offload"},
               "int8": {"quantize": "int8"}}


@pytest.mark.parametrize(("family", "setup"), [("sd15", "plain"), ("sd15", "group-offload"),
                                               ("sd15", "int8"), ("sdxl", "plain")])
@pytest.mark.filterwarnings("ignore")
@pytest.mark.slow
def test_a_unet_engine_with_a_lora_equals_stock_and_routes_cross_attention(
        tiny_dir, adapter_files, small_photo, family: str, setup: str) -> None:
    pipe = engine(tiny_folder(tiny_dir, family), adapter_files[family], **UNET_SETUPS[setup])
    full = Region(np.ones((48, 64), dtype=bool), PROMPT)
    edited = pipe(small_photo, [full], num_inference_steps=3, attention_boost=0, blend_steps=0,
                  preserve_background=False, generator=seed(), output_type="np").images
    stock = pipe.stock_pipeline()
    stock.set_progress_bar_config(disable=True)
    expected = stock_edit(stock, PROMPT, small_photo, num_inference_steps=3, generator=seed())
    assert np.abs(edited - expected).max() <= 1e-4
    if family == "sdxl":
        return
    assert_cross_attention_isolates_region_1(pipe, small_photo)


def assert_cross_attention_isolates_region_1(pipe, image: Image.Image) -> None:
    """Left and right halves, different groups. Every cross-attention layer gets the same input
    in each run (recorded, then replayed, so only the prompts differ); in the text branch its
    output at region 1's pixels (the left half of that layer's grid) is bit for bit the same
    when region 2's instruction changes, and moves when region 1's does."""
    width, height = image.size
    masks = [box_mask(image.size, (0, 0, width // 2, height)),
             box_mask(image.size, (width // 2, 0, width, height))]
    layers = {name: module for name, module in pipe.unet.named_modules()
              if name.endswith("attn2")}
    inputs: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}

    def replay(name: str):
        def hook(_module, args, kwargs):
            inputs.setdefault(name, args[0])
            return (inputs[name], *args[1:]), kwargs
        return hook

    def keep(name: str):
        def hook(_module, _args, _kwargs, output):
            outputs[name] = output[0]
        return hook

    handles = [hook for name, layer in layers.items() for hook in (
        layer.register_forward_pre_hook(replay(name), with_kwargs=True),
        layer.register_forward_hook(keep(name), with_kwargs=True))]

    def left_half(first: str, second: str) -> dict[str, torch.Tensor]:
        pipe(image, [Region(masks[0], first, group=1), Region(masks[1], second, group=2)],
             num_inference_steps=1, blend_steps=0, generator=seed(), output_type="latent")
        halves = {}
        for name, out in outputs.items():
            rows = round((out.shape[0] * height / width) ** 0.5)  # the layer's grid
            grid = out.reshape(rows, out.shape[0] // rows, -1)
            halves[name] = grid[:, : grid.shape[1] // 2].clone()
        return halves

    try:
        base = left_half("make it red", "add snow")
        other = left_half("make it red", "turn it into gold")
        own = left_half("make it blue", "add snow")
    finally:
        for handle in handles:
            handle.remove()
    assert base.keys() == layers.keys()
    assert all(torch.equal(base[name], other[name]) for name in layers)
    assert all((base[name] - own[name]).abs().max() > 0 for name in layers)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.slow
def test_lcm_lora_style_few_steps_and_a_fused_lora(tiny_dir, adapter_files, small_photo) -> None:
    """SD1.5 with a LoRA and `scheduler = lcm` at 4 steps equals stock with LCMScheduler and the
    same LoRA; fusing the LoRA into the weights (`fuse_lora`) gives the same edit."""
    pipe = engine(tiny_folder(tiny_dir, "sd15"), adapter_files["sd15"], scheduler="lcm")
    assert isinstance(pipe.scheduler, LCMScheduler)
    full = Region(np.ones((48, 64), dtype=bool), PROMPT)

    def ours() -> np.ndarray:
        return pipe(small_photo, [full], num_inference_steps=4, attention_boost=0,
                    blend_steps=0, preserve_background=False, generator=seed(),
                    output_type="np").images

    edited = ours()
    stock = tiny_engine(tiny_dir, "sd15", stock=True)
    stock.scheduler = LCMScheduler.from_config(stock.scheduler.config)
    stock.load_lora_weights(str(adapter_files["sd15"]), adapter_name="same")
    stock.set_adapters(["same"], adapter_weights=[SCALE])
    expected = stock_edit(stock, PROMPT, small_photo, num_inference_steps=4, generator=seed())
    assert np.abs(edited - expected).max() <= 1e-4
    pipe.fuse_lora(adapter_names=pipe.get_active_adapters())
    assert np.abs(ours() - edited).max() <= 1e-4


@pytest.mark.slow
def test_bad_adapters_are_clear_errors(tiny_dir, kontext_folder, adapter_files,
                                       tmp_path) -> None:
    pipe = tiny_engine(tiny_dir, "sd15")
    with pytest.raises(ValueError, match=r"lora 1: no such file or folder .*missing"):
        load_loras(pipe, [Lora(tmp_path / "missing.safetensors")])
    kontext = engine(kontext_folder, None)
    with pytest.raises(ValueError, match="lora 1 .* (another model family|can't be loaded)"):
        load_loras(kontext, [Lora(adapter_files["sd15"])])
    with pytest.raises(ValueError, match="nf4 runs on CUDA only"):
        engine(kontext_folder, None, quantize="nf4")
    with pytest.raises(models.ModelError, match="GGUF file replaces FLUX.1 Kontext"):
        engine(tiny_folder(tiny_dir, "sd15"), None, quantize=str(adapter_files["gguf"]))
    with pytest.raises(ValueError, match="Kontext keeps its flow-matching scheduler"):
        engine(kontext_folder, None, scheduler="lcm")


def test_lora_flags_read_path_and_scale() -> None:
    assert parse_lora("/loras/turbo.safetensors:0.6") == Lora(Path("/loras/turbo.safetensors"),
                                                              0.6)
    assert parse_lora("/loras/hyper.safetensors") == Lora(Path("/loras/hyper.safetensors"))
    assert parse_lora("C:/loras/a:b.safetensors") == Lora(Path("C:/loras/a:b.safetensors"))

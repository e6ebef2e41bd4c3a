"""The pipeline end to end on the tiny random-weight InstructPix2Pix of each family (SD1.5 and
SDXL): the equivalence anchor, one UNet call per step for any n, latent blending, paste-back,
processors restored, stopping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import box_mask
from diffusers import UNet2DConditionModel
from engine_families import FAMILY_NAMES, stock_edit, tiny_engine
from PIL import Image
from scipy.ndimage import distance_transform_edt

from promptartisan.engine import (
    PromptArtisanPipeline,
    Region,
    RegionError,
    SequentialBaseline,
    family_of,
)

SIZE = (64, 48)
PROMPTS = ["make it red", "turn it into a cat", "add snow", "make it gold", "add a hat",
           "make it glow", "turn it into wood", "add flowers"]


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def pipe(tiny_dir: Path, request: pytest.FixtureRequest) -> PromptArtisanPipeline:
    return tiny_engine(tiny_dir, request.param)


def grid(n: int, size: tuple[int, int] = SIZE) -> list[Region]:
    """n disjoint 16×16 boxes, one in each of 2×2 blocks (4×2 for more than 4) of an image of
    `size`: each in its own cell at the tiny UNet's coarsest resolution (2×2 at 64×48), where
    every region must have a pixel."""
    columns = 2 if n <= 4 else 4
    width, height = size[0] // columns, size[1] // 2
    boxes = [((k % columns) * width + (width - 16) // 2, (k // columns) * height + 4)
             for k in range(n)]
    return [Region(box_mask(size, (x, y, x + 16, y + 16)), PROMPTS[k])
            for k, (x, y) in enumerate(boxes)]


def seed(value: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(value)


def count_unet_calls(pipe: PromptArtisanPipeline
                     ) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    calls = [0]

    def hook(*_: object) -> None:
        calls[0] += 1

    handle = pipe.unet.register_forward_pre_hook(hook)
    return calls, handle


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.slow
def test_one_full_region_equals_stock_instruct_pix2pix(tiny_dir: Path, small_photo: Image.Image,
                                                       family: str) -> None:
    ours = tiny_engine(tiny_dir, family)
    stock = tiny_engine(tiny_dir, family, stock=True)
    full = Region(np.ones((48, 64), dtype=bool), "turn the sky into a sunset")
    edited = ours(small_photo, [full], num_inference_steps=3, attention_boost=0, blend_steps=0,
                  preserve_background=False, generator=seed(), output_type="np").images
    expected = stock_edit(stock, "turn the sky into a sunset", small_photo,
                          num_inference_steps=3, generator=seed())
    assert edited.shape == expected.shape == (1, 48, 64, 3)
    assert np.abs(edited - expected).max() <= 1e-4
    assert np.abs(expected - np.asarray(small_photo) / 255).max() > 0.05  # it did edit
    reused = type(ours).from_pipe(stock)  # built from a loaded stock pipeline
    again = reused(small_photo, [full], num_inference_steps=3, attention_boost=0, blend_steps=0,
                   preserve_background=False, generator=seed(), output_type="np").images
    assert np.array_equal(again, edited)


@pytest.mark.parametrize("n", [1, 2, 4, 8])
@pytest.mark.slow
def test_single_pass_runs_the_unet_once_per_step_for_any_n(pipe, photo, n: int) -> None:
    image = photo.resize((128, 96))  # room for 8 regions in the 3×4 cells of the coarsest level
    calls, handle = count_unet_calls(pipe)
    try:
        pipe(image, grid(n, image.size), num_inference_steps=2, generator=seed())
        single = calls[0]
        calls[0] = 0
        SequentialBaseline(pipe)(image, grid(n, image.size), num_inference_steps=2,
                                 generator=seed())
        sequential = calls[0]
    finally:
        handle.remove()
    assert single == 2
    assert sequential == 2 * n


def test_masked_baseline_runs_one_masked_pass_per_region(pipe, small_photo) -> None:
    calls, handle = count_unet_calls(pipe)
    try:
        out = SequentialBaseline(pipe, masked=True)(small_photo, grid(3), num_inference_steps=2,
                                                    generator=seed(), feather=0)
    finally:
        handle.remove()
    assert calls[0] == 6 and not out.interrupted
    union = np.any([r.mask for r in grid(3)], axis=0)
    assert np.array_equal(np.asarray(out.images[0])[~union], np.asarray(small_photo)[~union])


def test_blend_steps_hold_the_background_to_the_noised_source(pipe, small_photo) -> None:
    regions = [Region(box_mask(SIZE, (16, 8, 40, 32)), "make it red")]
    noise = torch.randn(1, 4, 6, 8, generator=seed(1))
    seen = []

    def keep(_pipe, step, timestep, tensors):
        seen.append(tensors["latents"].clone())
        return tensors

    pipe(small_photo, regions, num_inference_steps=4, blend_steps=2, latents=noise,
         generator=seed(), callback_on_step_end=keep, output_type="latent")
    pixels = pipe.image_processor.preprocess(small_photo)
    source = pipe.vae.encode(pixels).latent_dist.mode() * pipe.vae.config.scaling_factor
    outside = torch.ones(6, 8, dtype=torch.bool)
    outside[1:4, 2:5] = False
    timesteps = pipe.scheduler.timesteps
    for step, latents in enumerate(seen):
        noised = (pipe.scheduler.add_noise(source, noise, timesteps[step + 1:step + 2])
                  if step + 1 < len(timesteps) else source)
        gap = (latents - noised)[..., outside].abs().amax()
        if step < 2:
            assert gap <= 1e-6
            assert (latents - noised)[..., ~outside].abs().amax() > 1e-3  # the region is free
        else:
            assert gap > 1e-3


def test_pixels_farther_than_feather_are_the_source_bit_for_bit(pipe, photo) -> None:
    photo = photo.resize((60, 45))  # not a multiple of 8: the result is resized back
    masks = [box_mask((60, 45), (5, 5, 20, 18)), box_mask((60, 45), (30, 20, 47, 40))]
    regions = [Region(mask, prompt) for mask, prompt in zip(masks, PROMPTS, strict=False)]
    source = np.asarray(photo)
    far = distance_transform_edt(~(masks[0] | masks[1])) > 4
    kept = np.asarray(pipe(photo, regions, num_inference_steps=2, feather=4, generator=seed())
                      .images[0])
    assert kept.shape == source.shape
    assert np.array_equal(kept[far], source[far])
    assert np.abs(kept[~far].astype(int) - source[~far]).max() > 10  # the regions were edited
    loose = np.asarray(pipe(photo, regions, num_inference_steps=2, feather=4, generator=seed(),
                            preserve_background=False).images[0])
    assert not np.array_equal(loose[far], source[far])  # without paste-back they drift


def test_processors_are_restored_and_the_unet_is_plain_again(pipe, small_photo) -> None:
    stock = pipe.stock_pipeline()
    stock.set_progress_bar_config(disable=True)
    before = stock_edit(stock, "add snow", small_photo, num_inference_steps=2, generator=seed())
    processors = pipe.unet.attn_processors
    pipe(small_photo, grid(3), num_inference_steps=2, generator=seed())
    assert all(pipe.unet.attn_processors[name] is proc for name, proc in processors.items())

    def fail(*_):
        raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        pipe(small_photo, grid(2), num_inference_steps=2, callback_on_step_end=fail)
    assert all(pipe.unet.attn_processors[name] is proc for name, proc in processors.items())
    after = stock_edit(stock, "add snow", small_photo, num_inference_steps=2, generator=seed())
    assert np.array_equal(before, after)


def test_a_callback_stops_the_run_cleanly(pipe, small_photo) -> None:
    steps = []

    def stop_at_one(p, step, timestep, tensors):
        steps.append(step)
        if step == 1:
            p.interrupt_run()
        return tensors

    calls, handle = count_unet_calls(pipe)
    try:
        out = pipe(small_photo, grid(2), num_inference_steps=5, callback_on_step_end=stop_at_one)
        assert out.interrupted and out.images == [] and steps == [0, 1] and calls[0] == 2
        calls[0] = 0
        again = pipe(small_photo, grid(2), num_inference_steps=2)  # the flag does not stick
        assert not again.interrupted and len(again.images) == 1 and calls[0] == 2
        for masked in (False, True):
            calls[0], steps[:] = 0, []
            out = SequentialBaseline(pipe, masked=masked)(
                small_photo, grid(3), num_inference_steps=2,
                callback_on_step_end=lambda p, s, t, k: (p.interrupt_run() if s == 2 else None,
                                                         steps.append(s), k)[-1])
            assert out.interrupted and out.images == [] and steps == [0, 1, 2]
            assert calls[0] == 3  # stopped in the second pass
    finally:
        handle.remove()


def test_bad_inputs_fail_before_any_model_runs(pipe, small_photo) -> None:
    calls, handle = count_unet_calls(pipe)
    good = grid(1)[0].mask
    try:
        with pytest.raises(RegionError, match="empty prompt"):
            pipe(small_photo, [Region(good, " ")])
        with pytest.raises(RegionError, match="more than the limit of 8"):
            pipe(small_photo, grid(8) + grid(1))
        with pytest.raises(RegionError, match="more than the limit of 2"):
            pipe(small_photo, grid(3), max_regions=2)
        with pytest.raises(RegionError, match="aspect ratios differ"):
            pipe(small_photo, [Region(np.ones((64, 64), bool), "a")])
        with pytest.raises(RegionError, match="every region's mask is empty"), \
                pytest.warns(UserWarning, match="empty mask"):
            pipe(small_photo, [Region(np.zeros((48, 64), bool), "a")])
        with pytest.raises(ValueError, match="PIL image or an"):
            pipe("photo.png", grid(1))
        with pytest.raises(ValueError, match="blend_steps"):
            pipe(small_photo, grid(1), blend_steps=-1)
        with pytest.raises(ValueError, match="callback tensors"):
            pipe(small_photo, grid(1), callback_on_step_end_tensor_inputs=["noise_pred"])
    finally:
        handle.remove()
    assert calls[0] == 0


def test_overlong_prompt_is_truncated_with_a_warning_naming_it(pipe, small_photo) -> None:
    long = "make the " + " and ".join(["very bright red"] * 30) + " balloon"
    region = Region(grid(1)[0].mask, long)
    with pytest.warns(UserWarning, match=r"region 1's prompt 'make the very bright red.*tokens"):
        out = pipe(small_photo, [region], num_inference_steps=1)
    assert len(out.images) == 1


def test_every_region_is_read_in_every_attention_layer(pipe, small_photo, monkeypatch) -> None:
    """A 5×5 region beside a later, equal-order big region (it used to lose every pixel at the
    coarse levels, so no pixel read its prompt in the mid block), and a 5×5 region on top of the
    big one. Each cross-attention layer gets the same input in every run (recorded, then
    replayed); a region's prompt is read there if perturbing it changes the layer's output."""
    regions = [Region(box_mask(SIZE, (2, 2, 7, 7)), "add a hat"),
               Region(box_mask(SIZE, (8, 0, 64, 48)), "make it red"),
               Region(box_mask(SIZE, (50, 36, 55, 41)), "add snow", order=1)]
    layers = {name: module for name, module in pipe.unet.named_modules()
              if name.endswith("attn2")}
    assert any(name.startswith("mid_block") for name in layers)
    inputs: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}

    def replay(name: str):
        def hook(_module, args, kwargs):
            if name not in inputs:
                inputs[name] = args[0]
            return (inputs[name], *args[1:]), kwargs
        return hook

    def keep(name: str):
        def hook(_module, _args, _kwargs, output):
            outputs[name] = output[0]  # the text row
        return hook

    handles = [hook for name, layer in layers.items() for hook in (
        layer.register_forward_pre_hook(replay(name), with_kwargs=True),
        layer.register_forward_hook(keep(name), with_kwargs=True))]
    encode = pipe.encode_prompts

    def run() -> dict[str, torch.Tensor]:
        pipe(small_photo, regions, num_inference_steps=1, blend_steps=0, generator=seed(),
             output_type="latent")
        return dict(outputs)

    try:
        first = run()
        for k in range(len(regions)):
            def perturbed(prompts, device, k=k):
                embeds, words = encode(prompts, device)
                chunk = slice(77 * k, 77 * (k + 1))
                embeds = embeds.clone()
                embeds[:, chunk] += torch.randn(embeds[:, chunk].shape, generator=seed())
                return embeds, words

            monkeypatch.setattr(pipe, "encode_prompts", perturbed)
            changed = run()
            unread = [name for name in layers
                      if torch.equal(changed[name], first[name])]
            assert unread == [], f"region {k + 1}'s prompt is not read in {unread}"
    finally:
        for handle in handles:
            handle.remove()


def unet_variant(pipe: PromptArtisanPipeline, **changes: object) -> UNet2DConditionModel:
    return UNet2DConditionModel.from_config({**pipe.unet.config, **changes})


REFUSED = {
    "sd15": [({"in_channels": 4}, "takes 4 input channels, not 8"),
             ({"class_embed_type": "timestep"}, "class_embed_type='timestep'"),
             ({"addition_embed_type": "text_time", "addition_time_embed_dim": 8,
               "projection_class_embeddings_input_dim": 56}, "addition_embed_type='text_time'"),
             ({"downsample_padding": 2}, "downsample_padding=2")],
    "sdxl": [({"in_channels": 4}, "takes 4 input channels, not 8"),
             ({"class_embed_type": "timestep"}, "class_embed_type='timestep'"),
             ({"addition_embed_type": None}, "addition_embed_type=None, not 'text_time'"),
             ({"downsample_padding": 2}, "downsample_padding=2")],
}


@pytest.mark.parametrize("case", range(4))
def test_a_unet_it_cant_drive_is_refused_with_the_reason(pipe, small_photo, case: int) -> None:
    changes, message = REFUSED[family_of(pipe.unet.config)][case]
    unet = unet_variant(pipe, **changes)
    parts = {**pipe.components, "unet": unet}
    with pytest.raises(ValueError, match=message):
        type(pipe)(**parts)
    swapped = type(pipe)(**pipe.components)
    swapped.unet = unet  # swapped in after construction: refused at call time
    calls, handle = count_unet_calls(swapped)
    try:
        with pytest.raises(ValueError, match=message):
            swapped(small_photo, grid(1), num_inference_steps=1)
    finally:
        handle.remove()
    assert calls[0] == 0


def test_a_unet_whose_downsamplers_round_down_is_routed_at_its_sizes(pipe, photo) -> None:
    """downsample_padding=0 halves 5×9 latents to 2×4, not 3×5: the label maps follow."""
    image = photo.resize((72, 40))
    unet = unet_variant(pipe, downsample_padding=0)
    padded = type(pipe)(**{**pipe.components, "unet": unet})
    padded.set_progress_bar_config(disable=True)
    out = padded(image, [Region(box_mask(image.size, (8, 8, 40, 32)), "make it red")],
                 num_inference_steps=1, output_type="np")
    assert out.images.shape == (1, 40, 72, 3)


def test_sequential_baseline_returns_the_source_size(pipe, photo) -> None:
    image = photo.resize((250, 333))  # stock works at 248×328
    regions = [Region(box_mask(image.size, (20, 30, 120, 200)), "make it red")]
    for masked in (False, True):
        out = SequentialBaseline(pipe, masked=masked)(image, regions, num_inference_steps=1,
                                                      generator=seed())
        assert out.images[0].size == (250, 333)


def test_more_regions_than_coarse_cells_still_edit_with_a_warning(pipe, small_photo) -> None:
    """Five regions on the tiny UNet's 2×2 coarsest grid: four own a cell there, the fifth is
    read at the finer resolutions, and the person gets the edit and a warning, not a refusal."""
    with pytest.warns(UserWarning, match="5 regions lie in too few cells of the 2×2 grid"):
        out = pipe(small_photo, grid(5), num_inference_steps=1, generator=seed())
    assert out.images[0].size == small_photo.size

"""The MMDiT family: PromptArtisanKontextPipeline on a tiny FLUX.1 Kontext built from config
(T5's vocabulary trained here), against diffusers' stock FluxKontextPipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import box_mask
from diffusers import DiffusionPipeline, FluxKontextPipeline, FluxTransformer2DModel
from PIL import Image
from torch.nn.attention.flex_attention import flex_attention

from promptartisan import models
from promptartisan.agent.benchmarks import BenchRegion
from promptartisan.agent.editor import Editor
from promptartisan.agent.evaluation import engine_methods
from promptartisan.agent.sessions.store import Session
from promptartisan.engine import Region, SequentialBaseline, family_of
from promptartisan.engine.bench_kontext import kontext_pipeline, run, table
from promptartisan.engine.joint_attention import joint_block_mask
from promptartisan.engine.joint_attention_rules import dense_mask, joint_tokens
from promptartisan.engine.pipeline_kontext import PromptArtisanKontextPipeline
from promptartisan.settings import Settings
from promptartisan.tiny import write_tiny_models

PROMPT = "turn the sky into a sunset"
STEPS = 3


@pytest.fixture(scope="session")
def kontext_folder(tiny_dir: Path) -> Path:
    return write_tiny_models(tiny_dir, ["flux-kontext"]) / "flux-kontext"


def load(folder: Path, cls=PromptArtisanKontextPipeline):
    pipe = cls.from_pretrained(str(folder), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def seed() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def halves(size: tuple[int, int]) -> list[np.ndarray]:
    width, height = size
    return [box_mask(size, (0, 0, width // 2, height)), box_mask(size, (width // 2, 0, width,
                                                                          height))]


@pytest.mark.parametrize("kernel", ["mask", "flex"])
@pytest.mark.filterwarnings("ignore")
@pytest.mark.slow
def test_one_full_region_equals_stock_kontext(kontext_folder, small_photo, kernel: str) -> None:
    """One region over the whole picture, no blending, no paste-back: stock FluxKontextPipeline
    at the same seed, told to read the instruction's own tokens (max_sequence_length) at the
    picture's size. The background chunk is in the sequence, read by no token; with the flex
    kernel, the block mask runs (eagerly) on the CPU."""
    ours, stock = load(kontext_folder), load(kontext_folder, FluxKontextPipeline)
    tokens = len(stock.tokenizer_2(PROMPT).input_ids)
    width, height = small_photo.size
    expected = stock(image=small_photo, prompt=PROMPT, height=height, width=width,
                     max_area=width * height, _auto_resize=False, max_sequence_length=tokens,
                     num_inference_steps=STEPS, guidance_scale=2.5, generator=seed(),
                     output_type="np").images
    edited = ours(small_photo, [Region(np.ones((height, width), dtype=bool), PROMPT)],
                  num_inference_steps=STEPS, guidance_scale=2.5, blend_steps=0,
                  preserve_background=False, kernel=kernel, generator=seed(),
                  output_type="np").images
    assert edited.shape == expected.shape == (1, height, width, 3)
    assert np.abs(edited - expected).max() <= 1e-4
    assert np.abs(expected - np.asarray(small_photo) / 255).max() > 0.05  # it did edit


def test_the_joint_mask_rule_by_rule() -> None:
    """Chunks [c_1 (2 tokens), c_2 (1), c_bg (1)], a 1 × 4 token grid labelled [bg, 1, 2, 2]
    with regions 1 and 2 in different groups; target then reference tokens."""
    tokens = joint_tokens([2, 1, 1], torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 2, 2]))
    c1, c2, bg = [0, 1], [2], [3]
    target = {"bg": [4], 1: [5], 2: [6, 7]}
    reference = {"bg": [8], 1: [9], 2: [10, 11]}
    mask = dense_mask(tokens)

    def reads(queries: list[int]) -> set[int]:
        rows = mask[queries]
        assert (rows == rows[0]).all()  # the tokens of one kind and label read alike
        return set(rows[0].nonzero().flatten().tolist())

    image_1 = {*target["bg"], *target[1], *reference["bg"], *reference[1]}
    image_2 = {*target["bg"], *target[2], *reference["bg"], *reference[2]}
    everything_image = set(range(4, 12))
    # 1. Text reads text and image of its own label only, and is read by them only.
    assert reads(c1) == {*c1, *target[1], *reference[1]}
    assert reads(c2) == {*c2, *target[2], *reference[2]}
    assert reads(bg) == {*bg, *target["bg"], *reference["bg"]}
    # 2. Image tokens: own chunk; image tokens of their group and the background's.
    assert reads(target[1]) == reads(reference[1]) == {*c1} | image_1
    assert reads(target[2]) == reads(reference[2]) == {*c2} | image_2
    assert reads(target["bg"]) == reads(reference["bg"]) == {*bg} | everything_image
    # Nobody reads itself out: every row has its own token (no empty softmax).
    assert mask.diagonal().all()


def test_a_shared_group_sees_itself_and_the_block_mask_is_the_dense_one() -> None:
    """Regions 1 and 2 in one group read each other's image tokens but each reads only its own
    chunk; flex_attention with the block mask (eager, on the CPU) computes the same attention as
    SDPA with the dense mask, on a sequence longer than one 128-token block."""
    torch.manual_seed(0)
    labels = torch.randint(0, 4, (150,))
    groups = torch.tensor([0, 1, 1, 2])[labels]
    tokens = joint_tokens([5, 7, 3, 2], labels, groups)
    mask = dense_mask(tokens)
    text, first, second = 17, 17 + (labels == 1).nonzero()[0], 17 + (labels == 2).nonzero()[0]
    assert mask[first, second] and mask[second, first]
    assert not mask[first, 5:12].any() and mask[first, 0:5].all()  # c_1 only, not c_2
    assert not mask[17 + (labels == 3).nonzero()[0], first]  # group 2 can't read group 1
    query, key, value = torch.randn(3, 1, 2, len(tokens), 8).unbind(0)
    dense = F.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    flex = flex_attention(query, key, value, block_mask=joint_block_mask(tokens))
    assert len(tokens) > 128 and text == 17
    assert torch.allclose(flex, dense, atol=1e-6)


class Capture:
    """The routed transformer's inputs and processors during one real call, to run it again
    with the same mask on changed inputs."""

    def __init__(self, pipe: PromptArtisanKontextPipeline) -> None:
        self.pipe, self.kwargs, self.processors = pipe, None, None
        self.handle = pipe.transformer.register_forward_pre_hook(self.keep, with_kwargs=True)

    def keep(self, module, args, kwargs) -> None:
        if self.kwargs is None:
            self.kwargs, self.processors = dict(kwargs), dict(module.attn_processors)

    def run(self, layer: str | None = None, **changes) -> torch.Tensor:
        """The image stream of the whole transformer (or after block `layer`) with `changes`."""
        transformer = self.pipe.transformer
        original = transformer.attn_processors
        seen = {}
        hook = None
        if layer is not None:
            block = transformer.get_submodule(layer)
            hook = block.register_forward_hook(lambda m, a, out: seen.update(out=out[1]))
        transformer.set_attn_processor(dict(self.processors))  # it empties the dict it gets
        try:
            with torch.no_grad():
                out = transformer(**{**self.kwargs, **changes})[0]
        finally:
            transformer.set_attn_processor(original)
            if hook is not None:
                hook.remove()
        return seen["out"] if layer is not None else out


def captured(pipe: PromptArtisanKontextPipeline, image: Image.Image, regions: list[Region]
             ) -> Capture:
    capture = Capture(pipe)
    pipe(image, regions, num_inference_steps=1, generator=seed(), output_type="latent")
    capture.handle.remove()
    return capture


def chunk_slices(pipe: PromptArtisanKontextPipeline, prompts: list[str]) -> list[slice]:
    lengths = [len(pipe.tokenizer_2(p).input_ids) for p in [*prompts, ""]]
    ends = np.cumsum(lengths)
    return [slice(int(end - n), int(end)) for n, end in zip(lengths, ends, strict=True)]


def perturbed(embeds: torch.Tensor, chunk: slice) -> torch.Tensor:
    changed = embeds.clone()
    changed[:, chunk] = torch.randn_like(changed[:, chunk]) * 3
    return changed


@pytest.mark.slow
def test_context_is_the_chunks_at_their_own_length_and_the_pooled_prompt(
        kontext_folder, small_photo) -> None:
    """T5 sequence: [c_1 | c_2 | c_bg], each chunk its own encoding at its token count (no
    padding), text positions all 0; the pooled embedding is the background prompt's with two
    instructions, the instruction's with one."""
    pipe = load(kontext_folder)
    prompts = ["make it red", "add snow"]
    capture = captured(pipe, small_photo, [Region(m, p) for m, p in
                                           zip(halves(small_photo.size), prompts, strict=True)])
    context = capture.kwargs["encoder_hidden_states"]
    slices = chunk_slices(pipe, prompts)
    assert context.shape[1] == slices[-1].stop
    for prompt, chunk in zip([*prompts, ""], slices, strict=True):
        ids = pipe.tokenizer_2(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            assert torch.allclose(context[:, chunk], pipe.text_encoder_2(ids)[0], atol=1e-6)
    assert not capture.kwargs["txt_ids"].any()
    pooled = capture.kwargs["pooled_projections"]

    def clip(prompt: str) -> torch.Tensor:
        ids = pipe.tokenizer(prompt, padding="max_length", max_length=77,
                             return_tensors="pt").input_ids
        with torch.no_grad():
            return pipe.text_encoder(ids).pooler_output

    assert torch.allclose(pooled, clip(""), atol=1e-6)
    assert not torch.allclose(pooled, clip(prompts[0]), atol=1e-3)
    one = captured(pipe, small_photo, [Region(halves(small_photo.size)[0], prompts[0])])
    assert torch.allclose(one.kwargs["pooled_projections"], clip(prompts[0]), atol=1e-6)


def test_a_chunk_reaches_only_its_region_at_the_first_layer(kontext_folder, small_photo) -> None:
    """Two regions (left and right quarters) and background between them. Replacing chunk 1's
    embedding changes, after the first joint block, region 1's target tokens and nothing of
    region 2's or the background's; and the other way round."""
    pipe = load(kontext_folder)
    width, height = small_photo.size
    masks = [box_mask(small_photo.size, (0, 0, 16, height)),
             box_mask(small_photo.size, (48, 0, 64, height))]
    prompts = ["make it red", "add snow"]
    capture = captured(pipe, small_photo, [Region(m, p) for m, p in
                                           zip(masks, prompts, strict=True)])
    grid = np.arange(12).reshape(3, 4)  # the 3 × 4 token grid of a 64 × 48 picture
    region = [grid[:, 0].tolist(), grid[:, 3].tolist()]
    background = grid[:, 1:3].flatten().tolist()
    context = capture.kwargs["encoder_hidden_states"]
    base = capture.run("transformer_blocks.0")
    for k, j in ((0, 1), (1, 0)):
        changed = capture.run("transformer_blocks.0",
                              encoder_hidden_states=perturbed(context,
                                                              chunk_slices(pipe, prompts)[k]))
        assert (changed[0, region[k]] - base[0, region[k]]).abs().max() > 1e-3
        assert torch.equal(changed[0, region[j]], base[0, region[j]])
        assert torch.equal(changed[0, background], base[0, background])
        reference = [12 + t for t in region[j]]  # region j's reference tokens
        assert torch.equal(changed[0, reference], base[0, reference])


@pytest.mark.slow
def test_regions_without_background_between_them_never_meet(kontext_folder,
                                                            small_photo) -> None:
    """Two regions of different groups tiling the picture: no background token joins them, so
    through a whole step of a deeper transformer (3 double, 3 single blocks) region 2's
    prediction is bit for bit unchanged when chunk 1 changes. With background present, the
    background (which reads every image token) carries chunk 1 onward after two blocks: the
    second half of the test shows that path exists, as it does in the UNet families."""
    pipe = load(kontext_folder)
    config = {**pipe.transformer.config, "num_layers": 3, "num_single_layers": 3}
    torch.manual_seed(1)
    pipe.transformer = FluxTransformer2DModel.from_config(config)
    prompts = ["make it red", "add snow"]
    grid = np.arange(12).reshape(3, 4)
    for masks, meets in ((halves(small_photo.size), False),
                         ([box_mask(small_photo.size, (0, 0, 16, 48)),
                           box_mask(small_photo.size, (48, 0, 64, 48))], True)):
        capture = captured(pipe, small_photo, [Region(m, p) for m, p in
                                               zip(masks, prompts, strict=True)])
        context = capture.kwargs["encoder_hidden_states"]
        base = capture.run()
        changed = capture.run(encoder_hidden_states=perturbed(context,
                                                              chunk_slices(pipe, prompts)[0]))
        right = grid[:, 3].tolist()
        assert (changed[0, grid[:, 0]] - base[0, grid[:, 0]]).abs().max() > 1e-3
        assert torch.equal(changed[0, right], base[0, right]) is not meets


@pytest.mark.filterwarnings("ignore")
def test_blending_holds_the_background_to_the_source_latents(kontext_folder,
                                                            small_photo) -> None:
    """Blending every step: the final packed latents outside the region are the source's
    (σ = 0 after the last step), exactly; inside they are not."""
    pipe = load(kontext_folder)
    mask = box_mask(small_photo.size, (0, 0, 32, 48))
    latents = pipe(small_photo, [Region(mask, PROMPT)], num_inference_steps=STEPS,
                   blend_steps=STEPS, generator=seed(), output_type="latent").images
    pixels = pipe.image_processor.preprocess(small_photo, 48, 64)
    source = pipe.vae.encode(pixels).latent_dist.mode()
    source = (source - pipe.vae.config.shift_factor) * pipe.vae.config.scaling_factor
    source = FluxKontextPipeline._pack_latents(source, 1, 16, 6, 8)
    inside = np.arange(12).reshape(3, 4)[:, :2].flatten()
    outside = np.arange(12).reshape(3, 4)[:, 2:].flatten()
    assert torch.equal(latents[0, outside], source[0, outside])
    assert (latents[0, inside] - source[0, inside]).abs().max() > 1e-2


@pytest.mark.filterwarnings("ignore")
@pytest.mark.slow
def test_paste_back_keeps_every_pixel_away_from_the_mask(kontext_folder, photo) -> None:
    """At a size that is no multiple of 16 (edited at 96 × 80, returned at 100 × 83), pixels
    beyond the feather are the source's bytes; inside the mask they changed."""
    source = photo.resize((100, 83))
    mask = box_mask(source.size, (10, 10, 40, 50))
    pipe = load(kontext_folder)
    edited = np.asarray(pipe(source, [Region(mask, PROMPT)], num_inference_steps=2,
                             feather=4, generator=seed()).images[0])
    away = np.ones(mask.shape, dtype=bool)
    away[6:54, 6:44] = False
    assert edited.shape == (83, 100, 3)
    assert np.array_equal(edited[away], np.asarray(source)[away])
    assert not np.array_equal(edited[mask], np.asarray(source)[mask])


def test_bad_input_is_a_clear_error(kontext_folder, small_photo) -> None:
    pipe = load(kontext_folder)
    region = [Region(np.ones((48, 64), dtype=bool), PROMPT)]
    with pytest.raises(ValueError, match="16 px"):
        pipe(small_photo.resize((12, 40)), [Region(np.ones((40, 12), dtype=bool), PROMPT)])
    with pytest.raises(ValueError, match="kernel"):
        pipe(small_photo, region, num_inference_steps=1, kernel="xformers")
    with pytest.raises(ValueError, match="callback tensors"):
        pipe(small_photo, region, callback_on_step_end_tensor_inputs=["noise"])


@pytest.mark.slow
def test_the_family_comes_from_the_config_not_the_name(kontext_folder, tmp_path) -> None:
    """The tiny Kontext under a folder name that says nothing loads as the Kontext family
    (model_index.json names a Flux transformer) and works at 1024 px unless told otherwise."""
    assert family_of({}, DiffusionPipeline.load_config(str(kontext_folder))) == "kontext"
    renamed = tmp_path / "instruct-pix2pix"
    renamed.symlink_to(kontext_folder, target_is_directory=True)
    settings = Settings(instruct_pix2pix=str(renamed), device="cpu", dtype="float32")
    pipe = models.load_engine(settings, dtype=torch.float32)
    assert type(pipe) is PromptArtisanKontextPipeline and pipe.default_working_size == 1024
    assert models.engine_working_size(settings) == 1024
    assert models.engine_working_size(settings.model_copy(update={"working_size": 256})) == 256


@pytest.mark.slow
def test_an_editor_turn_edits_with_the_tiny_kontext_model(kontext_folder, tmp_path,
                                                         photo) -> None:
    """Through Editor.turn: the engine setting names the Kontext folder; the edit runs at
    Kontext's working size with the settings Kontext has, and keeps every pixel away from the
    mask."""
    settings = Settings(instruct_pix2pix=str(kontext_folder), device="cpu", dtype="float32",
                        steps=2, seed=3, planner="rules", session_dir=tmp_path / "sessions")
    source = photo.resize((384, 288))
    session = Session.create(settings.session_dir, source)
    mask = box_mask(source.size, (100, 60, 220, 180))
    result = Editor(settings).turn(session, "make the helmet gold", mask=mask)
    assert result.kind == "edit", result.message
    provenance = session.version(result.version_id).provenance
    assert provenance["models"]["engine_class"] == "PromptArtisanKontextPipeline"
    assert provenance["working_size"] == [1024, 768]
    assert "image_guidance_scale" not in provenance["engine"]
    assert provenance["engine"]["guidance_scale"] == 2.5  # Kontext's own, not InstructPix2Pix's
    edited = np.asarray(session.image(result.version_id))
    away = np.ones(mask.shape, dtype=bool)
    away[50:190, 90:230] = False  # the mask and more than the scaled feather around it
    assert np.array_equal(edited[away], np.asarray(source)[away])
    assert not np.array_equal(edited[mask], np.asarray(source)[mask])


def test_a_callback_sees_each_step_and_can_stop_the_run(kontext_folder, small_photo) -> None:
    """Stock's callback_on_step_end: one call per step with the latents; interrupt_run() ends
    the run after that step with no images. from_pipe reuses stock's loaded components."""
    pipe = PromptArtisanKontextPipeline.from_pipe(load(kontext_folder, FluxKontextPipeline))
    pipe.set_progress_bar_config(disable=True)
    steps = []

    def stop_after_two(p, step, timestep, tensors):
        steps.append((step, tuple(tensors["latents"].shape)))
        if step == 1:
            p.interrupt_run()
        return tensors

    output = pipe(small_photo, [Region(halves(small_photo.size)[0], PROMPT)],
                  num_inference_steps=4, generator=seed(), callback_on_step_end=stop_after_two)
    assert output.interrupted and output.images == []
    assert steps == [(0, (1, 12, 64)), (1, (1, 12, 64))]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.slow
def test_the_flex_kernel_computes_the_mask_kernels_edit(kontext_folder, small_photo) -> None:
    """Two regions of different groups and background: the flex path (tokens put in (group,
    label) order, a block mask, the order undone) gives the dense mask's edit, here run eagerly
    on the CPU."""
    pipe = load(kontext_folder)
    masks = [box_mask(small_photo.size, (0, 0, 16, 48)), box_mask(small_photo.size,
                                                                   (32, 16, 64, 48))]
    regions = [Region(masks[0], "make it red"), Region(masks[1], "add snow")]
    edits = [pipe(small_photo, regions, num_inference_steps=2, kernel=kernel, generator=seed(),
                  preserve_background=False, output_type="np").images
             for kernel in ("mask", "flex")]
    assert np.abs(edits[0] - edits[1]).max() <= 1e-5


@pytest.mark.slow
def test_the_download_entry_names_kontext_and_its_tiny_model_loads(tiny_dir) -> None:
    """`flux-kontext` is a models entry (fetched on request, not by default) whose tiny stand-in
    loads through models.load as users load theirs."""
    assert models.spec("flux-kontext").default is False
    assert Settings().flux_kontext == "black-forest-labs/FLUX.1-Kontext-dev"
    pipe = models.load(PromptArtisanKontextPipeline, "flux-kontext",
                       Settings(tiny=True, tiny_dir=tiny_dir), dtype=torch.float32)
    assert isinstance(pipe.transformer, FluxTransformer2DModel)


def columns(n: int, size: tuple[int, int]) -> list[Region]:
    """n regions, one token column each (16 px) from the left, of distinct prompts."""
    prompts = ["make it red", "add snow", "make it blue", "put a hat on the man"]
    return [Region(box_mask(size, (16 * k, 0, 16 * k + 16, size[1])), prompts[k])
            for k in range(n)]


def count_forwards(pipe: PromptArtisanKontextPipeline) -> tuple[list[int], object]:
    calls = [0]

    def count(*_: object) -> None:
        calls[0] += 1

    return calls, pipe.transformer.register_forward_pre_hook(count)


@pytest.mark.parametrize("n", [1, 2, 4])
@pytest.mark.filterwarnings("ignore")
@pytest.mark.slow
def test_one_transformer_forward_per_step_for_any_n_and_n_stock_edits_in_sequence(
        kontext_folder, photo, n: int) -> None:
    """The single pass calls the transformer once per step (distilled guidance: one branch)
    whatever n; the sequential baseline runs stock FluxKontextPipeline once per instruction,
    in the regions' order, each on the previous output, and returns the source's size (stock
    edits 96 × 80 of a 100 × 83 picture)."""
    source = photo.resize((100, 83))
    regions = columns(n, source.size)
    pipe = load(kontext_folder)
    calls, handle = count_forwards(pipe)
    baseline = SequentialBaseline(pipe)
    stock_calls = []
    stock = baseline.stock

    def recording(**kwargs):
        stock_calls.append((kwargs["prompt"], kwargs["image"].size, kwargs["height"],
                            kwargs["width"]))
        return stock(**kwargs)

    baseline.stock = recording
    try:
        pipe(source, regions, num_inference_steps=STEPS, generator=seed())
        single, calls[0] = calls[0], 0
        output = baseline(source, regions[::-1], num_inference_steps=STEPS, generator=seed())
        sequential = calls[0]
    finally:
        handle.remove()
    assert single == STEPS
    assert sequential == STEPS * n
    assert [c[0] for c in stock_calls] == [r.prompt for r in regions[::-1]]
    assert stock_calls[0][1] == (100, 83) and all(c[1] == (96, 80) for c in stock_calls[1:])
    assert all(c[2:] == (80, 96) for c in stock_calls)
    assert not output.interrupted and output.images[0].size == (100, 83)


@pytest.mark.filterwarnings("ignore")
def test_the_masked_baseline_keeps_every_pixel_outside_the_masks(kontext_folder,
                                                                small_photo) -> None:
    """sequential-masked: one PromptArtisan Kontext pass per instruction, each pasted back
    through its own mask (no feather here): pixels outside the union are the source's bytes,
    each region changed."""
    pipe = load(kontext_folder)
    masks = [box_mask(small_photo.size, (0, 0, 16, 48)),
             box_mask(small_photo.size, (48, 16, 64, 48))]
    regions = [Region(masks[0], "make it red"), Region(masks[1], "add snow")]
    calls, handle = count_forwards(pipe)
    try:
        output = SequentialBaseline(pipe, masked=True)(small_photo, regions,
                                                       num_inference_steps=2, generator=seed(),
                                                       feather=0)
    finally:
        handle.remove()
    edited, source = np.asarray(output.images[0]), np.asarray(small_photo)
    outside = ~(masks[0] | masks[1])
    assert calls[0] == 2 * 2 and not output.interrupted
    assert edited.shape == source.shape
    assert np.array_equal(edited[outside], source[outside])
    assert all(not np.array_equal(edited[m], source[m]) for m in masks)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.slow
def test_region_2s_instruction_moves_no_background_token_while_blending_is_on(
        kontext_folder, small_photo) -> None:
    """Two runs differing only in region 2's instruction: after every blended step the
    background's target tokens are the same in both, bit for bit, while region 2's differ; the
    steps after blending ends let it through (through the background, which reads every image
    token), which shows the comparison can fail."""
    pipe = load(kontext_folder)
    grid = np.arange(12).reshape(3, 4)
    background = grid[:, 1:3].flatten()
    masks = [box_mask(small_photo.size, (0, 0, 16, 48)),
             box_mask(small_photo.size, (48, 0, 64, 48))]

    def steps(second: str) -> list[torch.Tensor]:
        seen = []

        def keep(p, step, timestep, tensors):
            seen.append(tensors["latents"].clone())
            return tensors

        pipe(small_photo, [Region(masks[0], "make it red"), Region(masks[1], second)],
             num_inference_steps=4, blend_steps=2, generator=seed(),
             callback_on_step_end=keep, output_type="latent")
        return seen

    first, second = steps("add snow"), steps("turn the dog into a cheetah")
    for step in (0, 1):
        assert torch.equal(first[step][0, background], second[step][0, background])
        assert (first[step][0, grid[:, 3]] - second[step][0, grid[:, 3]]).abs().max() > 1e-4
    assert (first[3][0, background] - second[3][0, background]).abs().max() > 1e-4


@pytest.mark.parametrize("same_group", [True, False])
@pytest.mark.slow
def test_image_tokens_read_their_groups_region_only(kontext_folder, small_photo,
                                                   same_group: bool) -> None:
    """The mask probed through the real transformer, as the UNet family's self-attention test
    does: perturbing region 2's target tokens changes region 1's tokens after the first joint
    block when the two share a group, and leaves them bit for bit when they don't (the
    background, which reads every image token, changes either way)."""
    pipe = load(kontext_folder)
    groups = [1, 1] if same_group else [1, 2]
    masks = [box_mask(small_photo.size, (0, 0, 16, 48)),
             box_mask(small_photo.size, (48, 0, 64, 48))]
    capture = captured(pipe, small_photo, [Region(m, p, group=g) for m, p, g in
                                           zip(masks, ["make it red", "add snow"], groups,
                                               strict=True)])
    grid = np.arange(12).reshape(3, 4)
    hidden = capture.kwargs["hidden_states"].clone()
    hidden[:, grid[:, 3]] += 3 * torch.randn(hidden[:, grid[:, 3]].shape, generator=seed())
    base = capture.run("transformer_blocks.0")
    changed = capture.run("transformer_blocks.0", hidden_states=hidden)
    region_1 = (changed[0, grid[:, 0]] - base[0, grid[:, 0]]).abs().max()
    assert (region_1.item() > 1e-4) is same_group
    background = grid[:, 1:3].flatten()
    assert (changed[0, background] - base[0, background]).abs().max() > 1e-4


@pytest.mark.slow
def test_the_cost_benchmark_runs_and_reports(kontext_folder, capsys) -> None:
    """bench_kontext on the tiny model at a small width: every run of the plan, the forwards
    each made (one a step for stock and the single pass, one a step per instruction for the
    sequential baseline) and the table with the goals."""
    pipe = kontext_pipeline(kontext_folder, 1, 1, {"attention_head_dim": 16,
                                                   "num_attention_heads": 2,
                                                   "axes_dims_rope": (4, 6, 6)})
    rows = run(pipe, size=64, steps=2, progress=print)
    assert [(r["method"], r["n"], r["forwards"]) for r in rows] == [
        ("stock", 1, 2), ("stock-own", 1, 2), ("single", 1, 2), ("single", 2, 2),
        ("single", 4, 2), ("sequential", 2, 4), ("sequential", 4, 8)]
    assert all(r["seconds"] >= r["transformer_s"] > 0 for r in rows)
    report = table(rows)
    assert "goal ≤ 1.10" in report and "sequential / single, n=4" in report
    assert "single n=4:" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore")
def test_eval_runs_every_method_on_the_tiny_kontext_model(kontext_folder, small_photo) -> None:
    """`promptartisan eval`'s three methods on a Kontext engine (no image guidance reaches it):
    each edits at the case's size; the masked ones keep the pixels far from the mask."""
    settings = Settings(instruct_pix2pix=str(kontext_folder), device="cpu", dtype="float32",
                        steps=2)
    mask = box_mask(small_photo.size, (0, 0, 16, 48))
    regions = [BenchRegion(mask, "make it red"), BenchRegion(~mask, "add snow")]
    methods = engine_methods(["single", "sequential", "sequential-masked"], settings)
    source = np.asarray(small_photo)
    for name, method in methods.items():
        edited = np.asarray(method(small_photo, regions[:1], 0))
        assert edited.shape == source.shape, name
        assert not np.array_equal(edited, source), name
        if name != "sequential":
            assert np.array_equal(edited[:, 32:], source[:, 32:]), name
    assert np.asarray(methods["sequential"](small_photo, regions, 0)).shape == source.shape

"""The backends on tiny random-weight models, loaded the way users load the real ones."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from promptartisan import models
from promptartisan.settings import Settings
from promptartisan.tools import Grounder, load_grounder
from promptartisan.tools.clipseg import ClipSegGrounder
from promptartisan.tools.grounded_sam import GroundedSamGrounder, caption
from promptartisan.tools.images import InvalidImageError
from promptartisan.tools.masks import Refinement
from promptartisan.tools.sam import SAM_KINDS, SamSegmenter, SegmentAnythingSegmenter

FOUR = ["the dog", "a red car", "every tree", "the left window"]
LOOSE = Refinement(threshold=0.0, min_area=0.0, min_score=0.0, margin=0.0)


@pytest.fixture(scope="module")
def settings(tiny_dir: Path) -> Settings:
    return Settings(tiny=True, tiny_dir=tiny_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def clipseg(settings: Settings) -> ClipSegGrounder:
    return load_grounder("clipseg", settings=settings)


@pytest.fixture(scope="module")
def grounded_sam(settings: Settings) -> GroundedSamGrounder:
    return load_grounder("grounded-sam", settings=settings)


@pytest.fixture
def odd_image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (41, 67, 3), dtype=np.uint8))


def _batch(value: object) -> int | None:
    if isinstance(value, torch.Tensor):
        return value.shape[0]
    if isinstance(value, (list, tuple)):
        return next((b for b in map(_batch, value) if b is not None), None)
    return None


@contextmanager
def counting(**modules: torch.nn.Module) -> Iterator[dict[str, list[int | None]]]:
    """The batch size of each forward call of each named module while the block runs: an
    image encoded once is one call of batch 1, not one call of batch n."""
    calls: dict[str, list[int | None]] = {name: [] for name in modules}
    handles = []
    for name, module in modules.items():
        def hook(_: object, args: tuple, kwargs: dict, __: object, name: str = name) -> None:
            calls[name].append(_batch(list(args) + list(kwargs.values())))
        handles.append(module.register_forward_hook(hook, with_kwargs=True))
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


@pytest.mark.parametrize(("backend", "name", "hub_id"), [
    ("clipseg", "clipseg", "CIDAS/clipseg-rd64-refined"),
    ("grounded-sam", "groundingdino", "IDEA-Research/grounding-dino-tiny"),
    ("sam", "sam", "facebook/sam-vit-base"),
])
def test_each_backend_loads_folders_and_hub_ids_through_one_path(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, backend: str, name: str, hub_id: str,
) -> None:
    sources: list[str] = []
    real = models.load_from

    def spy(cls: type, source: str, **kwargs: object) -> object:
        sources.append(source)
        return real(cls, source, **kwargs)

    monkeypatch.setattr(models, "load_from", spy)
    folder = models.resolve(name, settings)
    grounder = load_grounder(backend, model=folder, settings=settings)
    assert isinstance(grounder, Grounder)
    assert sources[:2] == [folder, folder]  # the model and its processor
    sources.clear()
    with pytest.raises(models.MissingModelError, match=hub_id):
        load_grounder(backend, model=hub_id, settings=settings)  # offline: no such model here
    assert sources == [hub_id]


@pytest.mark.parametrize("phrases", [FOUR[:1], FOUR])
def test_clipseg_encodes_the_image_once_per_call(clipseg: ClipSegGrounder,
                                                 odd_image: Image.Image,
                                                 phrases: list[str]) -> None:
    clip = clipseg.model.clip
    with counting(vision=clip.vision_model, text=clip.text_model,
                  decoder=clipseg.model.decoder) as calls:
        results = clipseg.ground(odd_image, phrases)
    assert len(results) == len(phrases)
    n = len(phrases)
    assert calls == {"vision": [1], "text": [n], "decoder": [n]}


def test_clipseg_computes_what_the_models_forward_computes(clipseg: ClipSegGrounder,
                                                           odd_image: Image.Image) -> None:
    inputs = clipseg.processor(text=FOUR, images=[odd_image] * 4, padding=True,
                               return_tensors="pt")
    with torch.no_grad():
        expected = torch.sigmoid(clipseg.model(**inputs).logits)[:, None]
    expected = torch.nn.functional.interpolate(expected, size=(41, 67), mode="bilinear")[:, 0]
    torch.testing.assert_close(clipseg.probabilities(odd_image, FOUR), expected)


def test_grounded_sam_runs_detector_and_sam_encoder_once_per_call(
    grounded_sam: GroundedSamGrounder, odd_image: Image.Image, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(grounded_sam, "box_threshold", 0.0)  # random weights: keep every box
    other = odd_image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    modules = {"detector": grounded_sam.detector,
               "backbone": grounded_sam.detector.model.backbone,
               "sam": grounded_sam.segmenter.model.vision_encoder,
               "decoder": grounded_sam.segmenter.model.mask_decoder}
    for image, phrases in ((odd_image, FOUR[:1]), (other, FOUR)):
        with counting(**modules) as calls:
            results = grounded_sam.ground(image, phrases)
        assert calls["detector"] == calls["backbone"] == calls["sam"] == [1]
        assert len(calls["decoder"]) == 1  # every box of every phrase in one decoder call
        assert any(r is not None for r in results)
    with counting(**modules) as calls:  # the same image again: SAM's embedding is kept
        grounded_sam.ground(other, FOUR)
    assert calls["sam"] == [] and calls["detector"] == [1]


@pytest.mark.parametrize("backend", ["clipseg", "grounded-sam"])
def test_whole_image_phrases_make_no_model_call(request: pytest.FixtureRequest, backend: str,
                                                odd_image: Image.Image) -> None:
    grounder = request.getfixturevalue(backend.replace("-", "_"))
    with counting(model=grounder.detector if backend == "grounded-sam" else grounder.model,
                  sam=grounder.segmenter.model) as calls:
        results = grounder.ground(odd_image, ["image", "the whole photo", "everything"])
    assert calls == {"model": [], "sam": []}
    assert all(r.mask.shape == (41, 67) and r.mask.all() for r in results)


@pytest.mark.parametrize("size", [(67, 41), (41, 67), (33, 33), (129, 31)])
@pytest.mark.parametrize("backend", ["clipseg", "grounded-sam"])
def test_masks_have_the_images_size(request: pytest.FixtureRequest,
                                    monkeypatch: pytest.MonkeyPatch, backend: str,
                                    size: tuple[int, int]) -> None:
    grounder = request.getfixturevalue(backend.replace("-", "_"))
    monkeypatch.setattr(grounder, "refinement", LOOSE)
    if backend == "grounded-sam":
        monkeypatch.setattr(grounder, "box_threshold", 0.0)
    image = Image.new("RGB", size, (200, 30, 60))
    everything, left = grounder.ground(image, ["every dog", "the left dog"])
    for grounding in (everything, left):
        assert grounding is not None
        assert grounding.mask.shape == (size[1], size[0]) and grounding.mask.dtype == bool
    clicked = grounder.segment(image, points=[[size[0] // 2, size[1] // 2]])
    assert clicked.mask.shape == (size[1], size[0])


def test_grounded_sam_passes_the_chosen_box_to_sam(grounded_sam: GroundedSamGrounder,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    boxes = np.array([[40, 10, 60, 30], [2, 5, 20, 35], [25, 8, 35, 20]], dtype=np.float32)
    monkeypatch.setattr(grounded_sam, "detect",
                        lambda image, queries: [(boxes, np.array([0.9, 0.8, 0.85]))] * len(queries))
    seen: list[np.ndarray] = []
    predict = grounded_sam.segmenter.predict

    def spy(image: Image.Image, **prompts: object) -> tuple[np.ndarray, np.ndarray]:
        seen.append(np.asarray(prompts["boxes"]))
        return predict(image, **prompts)

    monkeypatch.setattr(grounded_sam.segmenter, "predict", spy)
    image = Image.new("RGB", (67, 41))
    left, every = grounded_sam.ground(image, ["the left car", "every car"])
    np.testing.assert_array_equal(left.boxes, boxes[1:2])
    assert every.group == 1 and len(every.boxes) == 3
    assert len(seen) == 1 and len(seen[0]) == 3  # one SAM call for every box of every phrase


def test_caption_spans_and_length_limit(grounded_sam: GroundedSamGrounder) -> None:
    text, spans = caption(["Red car", "a dog.", "sky?"])
    assert text == "red car. a dog. sky."
    assert [text[a:b] for a, b in spans] == ["red car", "a dog", "sky"]
    with pytest.raises(ValueError, match="tokens"):
        grounded_sam.ground(Image.new("RGB", (32, 32)), [" ".join(["red car"] * 150)])


def test_sam_embeds_once_for_successive_clicks(settings: Settings,
                                               odd_image: Image.Image) -> None:
    grounder = load_grounder("sam", settings=settings)
    segmenter = grounder.segmenter
    assert isinstance(segmenter, SamSegmenter)
    with counting(encoder=segmenter.model.vision_encoder) as calls:
        one = grounder.segment(odd_image, points=[[10, 10]])
        two = grounder.segment(odd_image, points=[[10, 10], [50, 30]], labels=[1, 0])
        boxes = grounder.segment(odd_image, boxes=[[2, 2, 30, 30], [35, 5, 65, 40]])
        assert calls["encoder"] == [1]
        grounder.segment(odd_image.transpose(Image.Transpose.ROTATE_180), points=[[5, 5]])
        assert calls["encoder"] == [1, 1]
    for grounding in (one, two, boxes):
        assert grounding.mask.shape == (41, 67) and grounding.mask.dtype == bool
    np.testing.assert_array_equal(boxes.boxes, [[2, 2, 30, 30], [35, 5, 65, 40]])


@pytest.mark.parametrize(("prompts", "message"), [
    ({}, "points .*or boxes"),
    ({"points": [[500, 5]]}, "inside"),
    ({"points": [[5, 5]], "labels": [0]}, "inside"),
    ({"points": [[5, 5]], "labels": [1, 1]}, "one 1"),
    ({"boxes": [[10, 10, 5, 20]]}, "x1 > x0"),
    ({"points": [[5, 5]], "boxes": [[1, 1, 9, 9], [2, 2, 8, 8]]}, "at most one box"),
])
def test_bad_clicks_are_clear_errors(settings: Settings, odd_image: Image.Image,
                                     prompts: dict, message: str) -> None:
    grounder = load_grounder("sam", settings=settings)
    with pytest.raises(ValueError, match=message):
        grounder.segment(odd_image, **prompts)


def test_bad_inputs_are_clear_errors(settings: Settings, clipseg: ClipSegGrounder) -> None:
    with pytest.raises(InvalidImageError):
        clipseg.ground(b"not an image", ["the dog"])
    with pytest.raises(InvalidImageError, match="uint8"):
        clipseg.ground(np.zeros((8, 8, 3), dtype=np.float32), ["the dog"])
    with pytest.raises(ValueError, match="no phrases"):
        clipseg.ground(Image.new("RGB", (8, 8)), [])
    with pytest.raises(ValueError, match="unknown grounding backend"):
        load_grounder("yolo", settings=settings)
    sam = load_grounder("sam", settings=settings)
    assert sam.ground(Image.new("RGB", (9, 7)), ["image"])[0].mask.shape == (7, 9)
    with pytest.raises(ValueError, match="clicks and boxes, not phrases"):
        sam.ground(Image.new("RGB", (9, 7)), ["the dog"])


def _tiny_sam_builder() -> partial:
    """segment-anything's own builder at a toy width: vit_b is 375 MB and seconds to run."""
    from segment_anything.build_sam import _build_sam

    return partial(_build_sam, encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2,
                   encoder_global_attn_indexes=[1])


@pytest.mark.slow
def test_segment_anything_checkpoint_builds_through_the_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, odd_image: Image.Image,
) -> None:
    from segment_anything import sam_model_registry

    built: list[str] = []
    builder = _tiny_sam_builder()

    def tiny(checkpoint: str | None = None) -> torch.nn.Module:
        built.append("vit_tiny")
        return builder(checkpoint=checkpoint)

    monkeypatch.setitem(sam_model_registry, "vit_tiny", tiny)
    monkeypatch.setitem(SAM_KINDS, 32, "vit_tiny")
    torch.manual_seed(1)
    saved = builder().state_dict()
    checkpoint = tmp_path / "sam_vit_tiny.pth"
    torch.save(saved, checkpoint)

    grounder = load_grounder("sam", model=str(checkpoint), device="cpu")
    segmenter = grounder.segmenter
    assert isinstance(segmenter, SegmentAnythingSegmenter) and built == ["vit_tiny"]
    loaded = segmenter.predictor.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved.items())

    encodes = []
    set_image = segmenter.predictor.set_image
    monkeypatch.setattr(segmenter.predictor, "set_image",
                        lambda image: encodes.append(1) or set_image(image))
    one = grounder.segment(odd_image, points=[[20, 20]])
    two = grounder.segment(odd_image, boxes=[[2, 2, 30, 30], [35, 5, 65, 40]])
    assert len(encodes) == 1
    assert one.mask.shape == two.mask.shape == (41, 67)


def test_registry_kinds_match_metas_checkpoints() -> None:
    """The widths that name a checkpoint's kind are those segment-anything builds."""
    from segment_anything import sam_model_registry

    for width, kind in SAM_KINDS.items():
        with torch.device("meta"):
            sam = sam_model_registry[kind]()
        assert sam.image_encoder.patch_embed.proj.weight.shape[0] == width


class Payload:
    """Not a tensor: a pickle that would run code if loaded without weights_only."""


def test_segment_anything_checkpoints_load_as_weights_only(tmp_path: Path) -> None:
    code = tmp_path / "code.pth"
    torch.save({"image_encoder.patch_embed.proj.weight": torch.zeros(32, 3, 16, 16),
                "payload": Payload()}, code)
    with pytest.raises(models.ModelError, match="can't be read"):
        load_grounder("sam", model=str(code), device="cpu")
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(models.ModelError, match="not a segment-anything"):
        load_grounder("sam", model=str(other), device="cpu")
    with pytest.raises(models.ModelError, match="no such file"):
        load_grounder("sam", model=str(tmp_path / "missing.pth"), device="cpu")


def test_cli_prints_each_phrase_and_writes_the_overlay(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], small_photo: Image.Image,
) -> None:
    from promptartisan.ui.cli import main

    monkeypatch.setenv("PROMPTARTISAN_TINY_DIR", str(tiny_dir))
    monkeypatch.chdir(tmp_path)
    small_photo.save("photo.png")
    code = main(["ground", "photo.png", "image", "the left car", "--tiny", "--backend",
                 "clipseg", "--device", "cpu", "--out", "overlay.png"])
    out = capsys.readouterr().out
    assert code == 0
    assert "'image': area=100.0% score=1.00 boxes=[0,0,64,48]" in out
    assert "'the left car':" in out
    assert Image.open("overlay.png").size == (64, 48)
    assert main(["ground", "missing.png", "the dog", "--tiny"]) == 2

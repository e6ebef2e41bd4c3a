"""Numbered selections on a picture: gestures, refinements, overlaps, saving, and the SAM
embedding computed once per version (tiny SAM, loaded the way users load the real one)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import box_mask
from PIL import Image
from scipy import ndimage

from promptartisan import models
from promptartisan.settings import Settings
from promptartisan.shared import DEVICE_LOCK
from promptartisan.tools.sam import SamSegmenter, load_segmenter
from promptartisan.tools.selection import (
    MAX_SELECTION_STEPS,
    MAX_STROKE_SIDES,
    Gesture,
    SelectionBook,
    SelectionError,
    Selector,
    _clipped,
)

SIZE = (80, 60)


class BoxSegmenter:
    """A stand-in for SAM that is easy to reason about: the box if one is given, else an
    8-pixel square around each inside click, less one around each outside click. Records
    every call's prompts."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, image: Image.Image, points: Any = None, labels: Any = None,
                 boxes: Any = None) -> np.ndarray:
        self.calls.append({"points": points, "labels": labels, "boxes": boxes})
        mask = np.zeros((image.height, image.width), dtype=bool)
        if boxes is not None:
            x0, y0, x1, y1 = (round(v) for v in boxes[0])
            mask[y0:y1, x0:x1] = True
        for (x, y), label in zip(points or [], labels or [], strict=True):
            x, y = round(x), round(y)
            mask[max(0, y - 8):y + 8, max(0, x - 8):x + 8] = bool(label)
        return mask


def click(x: float, y: float, kind: str = "include") -> Gesture:
    return Gesture(kind=kind, points=[(x, y)])


def box(x0: float, y0: float, x1: float, y1: float) -> Gesture:
    return Gesture(kind="box", points=[(x0, y0), (x1, y1)])


@pytest.fixture
def picture() -> Image.Image:
    return Image.new("RGB", SIZE, (90, 140, 30))


@pytest.fixture
def fake() -> BoxSegmenter:
    return BoxSegmenter()


@pytest.fixture
def book(picture: Image.Image, fake: BoxSegmenter) -> SelectionBook:
    return SelectionBook(picture, version=3, segment=fake, max_regions=3)


@pytest.fixture(scope="module")
def sam(tiny_dir: Path) -> SamSegmenter:
    settings = Settings(tiny=True, tiny_dir=tiny_dir, device="cpu", dtype="float32")
    segmenter = load_segmenter(models.resolve("sam", settings))
    assert isinstance(segmenter, SamSegmenter)
    return segmenter


@contextmanager
def encoder_calls(segmenter: SamSegmenter) -> Iterator[list[int]]:
    """Count the SAM image encoder's forward passes."""
    calls: list[int] = []
    hook = segmenter.model.vision_encoder.register_forward_hook(
        lambda *args: calls.append(1))
    try:
        yield calls
    finally:
        hook.remove()


# ----- gestures -------------------------------------------------------------------------------


def test_clicks_of_one_selection_go_to_sam_together_and_numbers_count_up(
        book: SelectionBook, fake: BoxSegmenter) -> None:
    assert book.gesture(click(20, 20)) == 1
    assert book.gesture(click(40, 30), 1) == 1  # a second click refines selection 1
    assert book.gesture(click(30, 22, "exclude"), 1) == 1
    assert fake.calls[-1] == {"points": [[20, 20], [40, 30], [30, 22]], "labels": [1, 1, 0],
                              "boxes": None}
    assert book.gesture(box(70, 50, 50, 35)) == 2  # corners in any order
    assert fake.calls[-1] == {"points": None, "labels": None, "boxes": [[50, 35, 70, 50]]}
    book.gesture(click(60, 40, "exclude"), 2)  # a box with only an outside click: SAM takes it
    assert fake.calls[-1]["boxes"] == [[50, 35, 70, 50]] and fake.calls[-1]["labels"] == [0]
    assert book.numbers == [1, 2]
    expected = box_mask(SIZE, (12, 12, 28, 28)) | box_mask(SIZE, (32, 22, 48, 38))
    expected &= ~box_mask(SIZE, (22, 14, 38, 30))
    assert np.array_equal(book.mask(1), expected)


def test_a_shift_click_without_a_number_takes_from_the_selection_under_it(
        book: SelectionBook) -> None:
    """With "New selection" on, a shift-click inside selection 1 goes to 1, not to the newest
    selection; outside every selection, to the one on top; with none, it is refused."""
    with pytest.raises(SelectionError, match="start one with a click or a box"):
        book.gesture(click(20, 20, "exclude"))
    book.gesture(box(5, 5, 35, 35))
    book.gesture(box(45, 5, 75, 35))
    book.gesture(box(5, 40, 35, 55))
    assert book.gesture(click(20, 20, "exclude")) == 1
    assert book.numbers == [1, 2, 3]  # no new selection
    assert book.gesture(click(60, 50, "exclude")) == 3  # under none: the top one
    book.reorder([3, 2, 1])
    assert book.gesture(click(60, 20, "exclude")) == 2


def test_brush_and_eraser_paint_on_top_of_sam(book: SelectionBook) -> None:
    number = book.gesture(box(10, 10, 30, 30))
    book.gesture(Gesture(kind="brush", points=[(40, 20), (70, 20)], radius=3), number)
    mask = book.mask(number)
    assert mask[20, 40:71].all() and mask[17:24, 55].all() and not mask[15, 55]
    book.gesture(Gesture(kind="erase", points=[(20, 5), (20, 55)], radius=2), number)
    mask = book.mask(number)
    assert not mask[10:30, 19:22].any() and mask[10:30, 12].all()
    painted = book.gesture(Gesture(kind="brush", points=[(5, 50)], radius=4))
    assert book.mask(painted).sum() == pytest.approx(np.pi * 16, rel=0.3)  # a dot, no SAM


def distance_to_stroke(size: tuple[int, int], points: list[tuple[float, float]]) -> np.ndarray:
    """Each pixel's exact distance to the polyline through `points` (the brush's geometry)."""
    ys, xs = np.mgrid[:size[1], :size[0]].astype(np.float64)
    best = np.full(xs.shape, np.inf)
    for (ax, ay), (bx, by) in zip(points, points[1:], strict=False):
        dx, dy = bx - ax, by - ay
        t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / (dx * dx + dy * dy), 0, 1)
        best = np.minimum(best, np.hypot(xs - (ax + t * dx), ys - (ay + t * dy)))
    return best


def test_clipping_keeps_the_part_of_each_segment_inside_the_box() -> None:
    segments = np.array([[[10, 10], [-1e12, 5]],  # leaves on the left
                         [[-5, -5], [85, 85]],  # crosses the box
                         [[20, 20], [30, 40]],  # inside: unchanged
                         [[-9, 70], [100, 90]],  # misses it
                         [[90, 5], [90, 50]],  # parallel to a side, outside
                         [[7, 7], [7, 7]]], dtype=np.float64)  # a dot inside
    clipped = _clipped(segments, (0, 0, 80, 60))
    assert len(clipped) == 4
    left, across, inside, dot = clipped
    assert left[0].tolist() == [10, 10] and left[1][0] == 0
    assert left[1][1] == pytest.approx(10 - 5 * 10 / (10 + 1e12))
    assert across.tolist() == [[0, 0], [60, 60]]
    assert inside.tolist() == [[20, 20], [30, 40]] and dot.tolist() == [[7, 7], [7, 7]]


def test_a_stroke_far_beyond_the_picture_paints_what_lies_within_its_radius(
        book: SelectionBook) -> None:
    """Its far-off points are clipped away, not drawn: the mask is the stroke's own geometry."""
    points = [(10.0, 10.0), (-9_000.0, 5.0), (40.0, 50.0), (40.0, 9_000.0)]
    number = book.gesture(Gesture(kind="brush", points=points, radius=3))
    distance = distance_to_stroke(SIZE, points)
    mask = book.mask(number)
    assert mask[distance <= 2].all() and not mask[distance > 4.5].any()


def test_a_stroke_across_the_picture_from_outside_to_outside_paints(book: SelectionBook) -> None:
    number = book.gesture(Gesture(kind="brush", points=[(-20, 30), (100, 30)], radius=2))
    assert book.mask(number)[30].all()


def test_an_overlong_stroke_is_refused_with_its_length(book: SelectionBook) -> None:
    """The probe's stroke: finite points, one inside, the others a trillion pixels away."""
    far = Gesture(kind="brush", points=[(10, 10), (-1e12, 5), (10, 10), (-1e12, 5)], radius=3)
    limit = f"{MAX_STROKE_SIDES * max(SIZE):,}"
    with pytest.raises(SelectionError, match=rf"3,000,000,000,030 pixels long.* {limit} pixels"):
        book.gesture(far)
    with pytest.raises(SelectionError, match="pixels long"):
        book.gesture(Gesture(kind="erase", points=[(10, 10), (1e308, 5), (-1e308, 5)]))
    assert book.numbers == []


def test_a_selection_keeps_a_bounded_number_of_steps(book: SelectionBook) -> None:
    number = book.gesture(Gesture(kind="brush", points=[(5, 5)], radius=1))
    for _ in range(MAX_SELECTION_STEPS - 2):
        book.refine(number, "invert")
    book.gesture(Gesture(kind="brush", points=[(9, 9)], radius=1), number)
    with pytest.raises(SelectionError, match=f"{MAX_SELECTION_STEPS} steps"):
        book.gesture(Gesture(kind="brush", points=[(20, 20)], radius=1), number)
    with pytest.raises(SelectionError, match=f"{MAX_SELECTION_STEPS} steps"):
        book.refine(number, "grow", 2)
    book.refine(number, "undo")
    book.refine(number, "grow", 2)  # room again


def test_a_selection_is_drawn_once_per_change(book: SelectionBook,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Every canvas call shows every selection: an unchanged one is not drawn again."""
    from promptartisan.tools import selection

    drawn = []
    stroke = selection._stroke
    monkeypatch.setattr(selection, "_stroke", lambda *a: drawn.append(a) or stroke(*a))
    first = book.gesture(Gesture(kind="brush", points=[(10, 10), (30, 10)], radius=2))
    second = book.gesture(Gesture(kind="brush", points=[(10, 40), (30, 40)], radius=2))
    assert len(drawn) == 2
    for _ in range(3):
        book.masks()
    assert len(drawn) == 2
    book.gesture(Gesture(kind="erase", points=[(20, 40)], radius=3), second)
    assert len(drawn) == 4 and not book.mask(second)[40, 20]  # its brush and eraser again
    book.refine(second, "undo")
    assert book.mask(second)[40, 20] and len(drawn) == 5
    assert book.mask(first)[10, 20] and len(drawn) == 5


def test_refinements_grow_shrink_invert_clear_undo_remove(book: SelectionBook) -> None:
    number = book.gesture(box(20, 20, 40, 30))  # 20 × 10 pixels
    square = book.mask(number)
    book.refine(number, "grow", 3)
    assert np.array_equal(book.mask(number), ndimage.distance_transform_edt(~square) <= 3)
    book.refine(number, "undo")
    book.refine(number, "shrink", 2)
    assert np.array_equal(book.mask(number), box_mask(SIZE, (22, 22, 38, 28)))
    book.refine(number, "invert")
    assert np.array_equal(book.mask(number), ~box_mask(SIZE, (22, 22, 38, 28)))
    book.refine(number, "clear")
    assert not book.mask(number).any()
    book.gesture(click(60, 40), number)  # after a clear, the earlier box is forgotten
    assert np.array_equal(book.mask(number), box_mask(SIZE, (52, 32, 68, 48)))
    for _ in range(2):  # the click, then the clear
        book.refine(number, "undo")
    assert np.array_equal(book.mask(number), ~box_mask(SIZE, (22, 22, 38, 28)))
    other = book.gesture(click(5, 5))
    book.refine(number, "remove")
    assert book.numbers == [other] == [2]  # the others keep their numbers
    assert book.gesture(click(9, 9)) == 3


def test_the_picture_edge_is_no_outline_for_shrink(book: SelectionBook) -> None:
    number = book.gesture(box(0, 0, 30, 30))
    book.refine(number, "shrink", 4)
    assert np.array_equal(book.mask(number), box_mask(SIZE, (0, 0, 26, 26)))


def test_later_selections_win_where_they_overlap_until_reordered(book: SelectionBook) -> None:
    first = book.gesture(box(10, 10, 50, 50))
    second = book.gesture(box(30, 30, 70, 55))
    own = {n: book.mask(n) for n in (first, second)}
    masks = book.masks()
    assert list(masks) == [1, 2]
    assert np.array_equal(masks[2], own[2])
    assert np.array_equal(masks[1], own[1] & ~own[2])
    book.reorder([2, 1])
    masks = book.masks()
    assert list(masks) == [2, 1] and book.numbers == [2, 1]
    assert np.array_equal(masks[1], own[1]) and np.array_equal(masks[2], own[2] & ~own[1])
    assert not (masks[1] & masks[2]).any()


@pytest.mark.parametrize(("gesture", "message"), [
    ({"kind": "include", "points": [(81, 10)]}, r"click at \(81, 10\) is outside the 80×60"),
    ({"kind": "include", "points": [(-1, 10)]}, "outside"),
    ({"kind": "box", "points": [(10, 10), (10, 40)]}, "no area"),
    ({"kind": "box", "points": [(90, 10), (120, 40)]}, "no area inside the picture"),
    ({"kind": "box", "points": [(10, 10)]}, "2 points"),
    ({"kind": "include", "points": [(1, 1), (2, 2)]}, "1 point"),
    ({"kind": "brush", "points": [(5, 5)], "radius": 0}, "radius"),
    ({"kind": "brush", "points": [(500, 500)]}, "stroke is outside"),
    ({"kind": "include", "points": [(float("nan"), 5)]}, "numbers"),
    ({"kind": "lasso", "points": [(5, 5)]}, "can't be read"),
    ({"kind": "include", "points": []}, "can't be read"),
])
def test_bad_gestures_are_clear_errors_and_change_nothing(
        book: SelectionBook, fake: BoxSegmenter, gesture: dict, message: str) -> None:
    book.gesture(click(20, 20))
    before = book.to_json()
    with pytest.raises(SelectionError, match=message):
        book.gesture(gesture)
    assert book.to_json() == before and len(fake.calls) == 1


def test_selection_limits_and_unknown_numbers(book: SelectionBook) -> None:
    for x in (10, 30, 50):
        book.gesture(click(x, 10))
    with pytest.raises(SelectionError, match="at most 3 selections"):
        book.gesture(click(70, 10))
    book.gesture(click(70, 10), 2)  # adding to an existing one is fine
    with pytest.raises(SelectionError, match="no selection 7; the selections are 1, 2 and 3"):
        book.gesture(click(5, 5), 7)
    with pytest.raises(SelectionError, match="nothing to undo"):
        number = book.gesture(Gesture(kind="brush", points=[(5, 50)]), 1)
        for _ in range(3):
            book.refine(number, "undo")
    with pytest.raises(SelectionError, match="1 to 256 pixels"):
        book.refine(1, "grow", 0)
    with pytest.raises(SelectionError, match="every selection once"):
        book.reorder([1, 2])
    with pytest.raises(SelectionError, match="shift-click takes away"):
        book.gesture(click(5, 5, "exclude"), 1)  # selection 1 has no click or box left


def test_a_gesture_on_an_old_version_is_refused(book: SelectionBook) -> None:
    book.check_version(3)
    with pytest.raises(SelectionError, match="made on version 3, but the chat is now at "
                                             "version 4"):
        book.check_version(4)


def test_a_book_saved_as_json_comes_back_without_sam(book: SelectionBook,
                                                     picture: Image.Image) -> None:
    import json

    one = book.gesture(click(20, 20))
    book.gesture(Gesture(kind="brush", points=[(60, 50), (70, 55)], radius=2), one)
    two = book.gesture(box(30, 10, 60, 40))
    book.refine(two, "grow", 2)
    book.reorder([2, 1])
    data = json.loads(json.dumps(book.to_json()))  # plain JSON all the way

    def no_sam(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("restoring a book must not need SAM")

    again = SelectionBook.from_json(data, picture, no_sam)
    assert again.numbers == [2, 1] and again.version == 3 and again.max_regions == 3
    for number, mask in book.masks().items():
        assert np.array_equal(again.masks()[number], mask)
    again.refine(one, "undo")  # the brush: SAM's mask for the click is kept
    assert np.array_equal(again.mask(one), box_mask(SIZE, (12, 12, 28, 28)))
    with pytest.raises(SelectionError, match="80×60 picture, not this 40×30"):
        SelectionBook.from_json(data, picture.resize((40, 30)), no_sam)
    with pytest.raises(SelectionError, match="can't be read"):
        SelectionBook.from_json({"version": 1}, picture, no_sam)
    damaged = json.loads(json.dumps(data))
    damaged["selections"][0]["sam_mask"] = "not a picture"
    with pytest.raises(SelectionError, match="can't be read"):
        SelectionBook.from_json(damaged, picture, no_sam)


# ----- SAM: one encoding per version ----------------------------------------------------------


def test_n_clicks_on_one_version_cost_one_image_encoding(sam: SamSegmenter,
                                                         small_photo: Image.Image) -> None:
    selector = Selector(sam, max_regions=8)
    other = small_photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    with encoder_calls(sam) as calls:
        book = selector.book("chat", 1, small_photo)
        first = book.gesture(click(10, 10))
        book.gesture(click(30, 20), first)
        book.gesture(click(12, 30, "exclude"), first)
        book.gesture(box(40, 5, 60, 40))
        book.gesture(click(50, 40))
        book.refine(first, "undo")
        assert selector.book("chat", 1, small_photo) is book  # the chat's book is kept
        assert len(calls) == 1  # five gestures, one encoding
        selector.book("chat", 2, other).gesture(click(5, 5))
        assert len(calls) == 2  # a new version is encoded once
        book.gesture(click(20, 40))  # back on version 1: its embedding is still kept
        assert len(calls) == 2
    for mask in book.masks().values():
        assert mask.shape == (48, 64) and mask.dtype == bool


def test_prepare_encodes_in_the_background_under_the_device_lock(
        sam: SamSegmenter, small_photo: Image.Image) -> None:
    picture = small_photo.rotate(90)  # a picture this module has not encoded
    selector = Selector(sam)
    with encoder_calls(sam) as calls:
        with DEVICE_LOCK:  # the engine is busy: prepare returns at once and waits its turn
            selector.prepare(picture)
            selector.prepare(picture)  # already under way: not started twice
            assert not selector.ready(picture) and calls == []
        assert selector.wait(picture, timeout=120)
        assert calls == [1] and selector.ready(picture)
        selector.book("chat", 5, picture).gesture(click(30, 30))
        assert calls == [1]  # the first click found the embedding ready


def test_a_big_picture_is_segmented_on_a_copy_and_answered_at_its_size(
        sam: SamSegmenter, small_photo: Image.Image) -> None:
    big = small_photo.resize((4096, 3072))
    selector = Selector(sam)
    book = selector.book("chat", 1, big)
    number = book.gesture(click(4000, 3000))
    assert book.mask(number).shape == (3072, 4096)
    with pytest.raises(SelectionError, match="outside the 4096×3072 picture"):
        book.gesture(click(4100, 10))


def test_the_shared_selector_loads_sam_through_the_settings(tiny_dir: Path,
                                                            small_photo: Image.Image) -> None:
    settings = Settings(tiny=True, tiny_dir=tiny_dir, device="cpu", dtype="float32",
                        max_regions=2)
    selector = Selector.shared(settings)
    assert Selector.shared(settings) is selector
    book = selector.book("s", 1, small_photo)
    assert book.max_regions == 2
    book.gesture(click(5, 5))
    assert isinstance(selector.segmenter, SamSegmenter)


def test_concurrent_gestures_on_one_book_each_get_a_number(book: SelectionBook) -> None:
    book.max_regions = 8
    numbers: list[int] = []
    threads = [threading.Thread(target=lambda x=x: numbers.append(book.gesture(click(x, 30))))
               for x in range(10, 80, 10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == list(range(1, 8)) == sorted(book.numbers)


# ----- SAM 2.1 through the same protocol and loading path -------------------------------------


@pytest.mark.slow
def test_sam2_checkpoints_load_through_the_same_path_and_embed_once(
        tmp_path: Path, small_photo: Image.Image) -> None:
    from promptartisan.tools.sam import Sam2Segmenter
    from promptartisan.tools.tiny_grounding import write_tiny_sam2

    write_tiny_sam2(tmp_path / "sam2")
    segmenter = load_segmenter(str(tmp_path / "sam2"))
    assert isinstance(segmenter, Sam2Segmenter)
    book = Selector(segmenter).book("chat", 1, small_photo)
    with encoder_calls(segmenter) as calls:
        first = book.gesture(click(10, 10))
        book.gesture(click(40, 30, "exclude"), first)
        book.gesture(box(30, 5, 60, 40))
        assert len(calls) == 1
    assert book.mask(first).shape == (48, 64)
    masks, scores = segmenter.predict(small_photo, boxes=[[2, 2, 30, 30], [35, 5, 60, 40]])
    assert masks.shape == (2, 48, 64) and scores.shape == (2,)


def test_a_sam2_video_checkpoint_gives_its_image_part(tmp_path: Path) -> None:
    """The hub's SAM 2.1 checkpoints are of type sam2_video: every image weight is taken."""
    import torch
    from transformers import Sam2Config, Sam2Model, Sam2VideoConfig, Sam2VideoModel

    from promptartisan.tools.sam import Sam2Segmenter
    from promptartisan.tools.tiny_grounding import write_tiny_sam2

    write_tiny_sam2(tmp_path / "image")
    image = Sam2Config.from_pretrained(tmp_path / "image")
    torch.manual_seed(1)
    video = Sam2VideoModel(Sam2VideoConfig(
        vision_config=image.vision_config.to_dict(),
        prompt_encoder_config=image.prompt_encoder_config.to_dict(),
        mask_decoder_config=image.mask_decoder_config.to_dict()))
    video.save_pretrained(tmp_path / "video", safe_serialization=True)
    for name in ("processor_config.json",):
        (tmp_path / "video" / name).write_bytes((tmp_path / "image" / name).read_bytes())
    segmenter = load_segmenter(str(tmp_path / "video"))
    assert isinstance(segmenter, Sam2Segmenter) and type(segmenter.model) is Sam2Model
    saved = video.state_dict()
    for key, value in segmenter.model.state_dict().items():
        assert torch.equal(value, saved[key]), key

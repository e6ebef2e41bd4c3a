"""Editor turns end to end on a real photo with the tiny models: the rules planner, the tiny
engine (and tiny grounding + SAM), one engine shared by concurrent sessions."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import box_mask
from PIL import Image, ImageOps
from scipy import ndimage

from promptartisan.agent.editor import Editor
from promptartisan.agent.sessions.store import RegionRecord, Session
from promptartisan.settings import Settings

WORKING = 128


@pytest.fixture
def settings(tiny_settings: Settings) -> Settings:
    return tiny_settings.model_copy(update={"working_size": WORKING, "seed": 7})


def far_from(mask: np.ndarray, pixels: int) -> np.ndarray:
    return ~ndimage.binary_dilation(mask, iterations=pixels, structure=np.ones((3, 3), bool))


def assert_unchanged_away_from(mask: np.ndarray, edited: Image.Image,
                               source: Image.Image) -> None:
    """Bit-identical beyond the paste-back feather (the engine's 8 px, scaled to the photo)."""
    feather = 8 * max(source.size) // WORKING
    away = far_from(mask, feather + 1)
    assert away.mean() > 0.3
    assert np.array_equal(np.asarray(edited)[away], np.asarray(source)[away])
    assert not np.array_equal(np.asarray(edited)[mask], np.asarray(source)[mask])


@pytest.mark.slow
def test_an_edit_on_a_photo_keeps_every_pixel_away_from_the_mask(
        settings: Settings, photo: Image.Image) -> None:
    session = Session.create(settings.session_dir, photo)
    mask = box_mask(photo.size, (150, 60, 330, 250))
    result = Editor(settings).turn(session, "make the helmet gold", mask=mask)
    assert result.kind == "edit", result.message
    assert result.image.size == photo.size
    assert_unchanged_away_from(mask, session.image(result.version_id), photo)
    provenance = session.version(result.version_id).provenance
    assert provenance["models"]["engine_class"] == "PromptArtisanPipeline"
    assert provenance["working_size"] == [WORKING, WORKING] and provenance["seed"] == 7

    # What the version records is enough to make it again, bit for bit.
    regions = [RegionRecord(mask=session.mask(result.version_id, r["k"]), prompt=r["prompt"],
                            target=r["target"], group=r["group"], order=r["order"])
               for r in session.regions(result.version_id)]
    again = Editor(settings).render(session.image(provenance["parent"]), regions,
                                    seed=provenance["seed"])
    assert again.parameters["engine"] == provenance["engine"]
    assert np.array_equal(np.asarray(again.image), np.asarray(session.image(result.version_id)))


@pytest.mark.slow
def test_a_target_is_grounded_by_the_tiny_models_asking_first_when_ambiguous(
        settings: Settings, photo: Image.Image) -> None:
    """Random weights decide whether tiny CLIPSeg sees one 'face' or several; either way the
    turn ends in an edit, through a question and tiny SAM when it saw several."""
    editor = Editor(settings)
    session = Session.create(settings.session_dir, photo)
    result = editor.turn(session, "make the face blue")
    source = "grounding"
    if result.kind == "clarify":
        assert result.choices[-1] == "all of them" and result.overlay is not None
        result, source = editor.turn(session, result.choices[0]), "choice"
    assert result.kind == "edit", result.message
    assert session.regions(1)[0]["source"] == source
    assert result.masks[0].shape == (photo.size[1], photo.size[0])


class RecordingEngine:
    """The shared engine, recording which thread enters and leaves each call."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.log: list[tuple[str, str]] = []
        self.name_or_path = pipe.name_or_path

    def interrupt_run(self) -> None:
        self.pipe.interrupt_run()

    def __call__(self, **kwargs: Any) -> Any:
        name = threading.current_thread().name
        self.log.append(("enter", name))
        try:
            return self.pipe(**kwargs)
        finally:
            self.log.append(("exit", name))


@pytest.mark.slow
def test_two_sessions_at_once_share_one_engine_without_interleaving(
        settings: Settings, photo: Image.Image) -> None:
    small = photo.resize((160, 120))
    sources = {"a": small, "b": ImageOps.mirror(small)}
    masks = {"a": box_mask(small.size, (10, 10, 60, 60)),
             "b": box_mask(small.size, (90, 50, 150, 110))}
    texts = {"a": "make the helmet gold", "b": "turn the flag green"}
    engine = RecordingEngine(Editor(settings).pipeline)  # the process's one tiny engine

    alone = {}
    for key in sources:  # each turn on its own first: what it must give under concurrency
        session = Session.create(settings.session_dir, sources[key])
        result = Editor(settings, pipeline=engine).turn(session, texts[key], mask=masks[key])
        alone[key] = np.asarray(result.image)
    engine.log.clear()

    sessions = {key: Session.create(settings.session_dir, sources[key]) for key in sources}
    results: dict[str, Any] = {}
    start = threading.Barrier(2)

    def run(key: str) -> None:
        start.wait()
        editor = Editor(settings, pipeline=engine)
        results[key] = editor.turn(sessions[key], texts[key], mask=masks[key])

    threads = [threading.Thread(target=run, args=(key,), name=key) for key in sources]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(results) == ["a", "b"]
    kinds, names = [k for k, _ in engine.log], [n for _, n in engine.log]
    assert kinds == ["enter", "exit", "enter", "exit"]  # never two inside at once
    assert names[0] == names[1] and names[2] == names[3] and {names[0], names[2]} == {"a", "b"}
    for key in sources:
        assert results[key].kind == "edit", results[key].message
        stored = sessions[key].image(results[key].version_id)
        assert np.array_equal(np.asarray(stored), alone[key])  # its own result, undisturbed
        assert_unchanged_away_from(masks[key], stored, sources[key])


def test_the_agent_package_imports_without_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, promptartisan.agent as a; a.Plan; a.Session; a.Editor; "
            "print('torch' in sys.modules, 'diffusers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[2])
    assert out.stdout.split() == ["False", "False"]

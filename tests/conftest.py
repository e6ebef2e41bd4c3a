"""Shared fixtures. Tests never touch the network: the hub is offline and models are tiny."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import socket  # noqa: E402

# planner = "auto" looks for Ollama: here it finds a port that refuses at once (bound for the
# whole run, never listening), never a real server on this machine. Tests of auto start their
# own server and name it.
_NO_OLLAMA = socket.socket()
_NO_OLLAMA.bind(("127.0.0.1", 0))
os.environ["OLLAMA_HOST"] = f"http://127.0.0.1:{_NO_OLLAMA.getsockname()[1]}"

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from promptartisan.settings import Settings  # noqa: E402


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder for the tiny models; each is written on first use and shared by the whole run."""
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture
def tiny_settings(tiny_dir: Path, tmp_path: Path) -> Settings:
    """Settings that load tiny models and keep sessions in the test's own folder."""
    return Settings(tiny=True, tiny_dir=tiny_dir, session_dir=tmp_path / "sessions",
                    device="cpu", dtype="float32", steps=3, planner="rules")


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A real photo (scikit-image's astronaut), 512×512 RGB."""
    from skimage import data

    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="session")
def small_photo(photo: Image.Image) -> Image.Image:
    """The photo at 64×48: odd aspect, quick for tiny-model runs."""
    return photo.resize((64, 48))


def box_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """A bool mask of `size` (width, height) true inside `box` (x0, y0, x1, y1)."""
    mask = np.zeros((size[1], size[0]), dtype=bool)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = True
    return mask

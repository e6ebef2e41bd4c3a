"""What every layer shares within one process: the device lock and the models loaded once.

The engine, the grounder, SAM and the local planner each run under `DEVICE_LOCK`, so one model
runs on the device at a time and concurrent turns queue rather than interleave; `shared_model`
keeps one instance of each per key (model, device, dtype …) for every Editor, chat and batch
worker of the process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

DEVICE_LOCK = threading.Lock()
"""Held while a model runs on the device (grounding, the engine), across the whole process."""

_shared_models: dict[tuple[Any, ...], Any] = {}
_shared_lock = threading.Lock()


def shared_model(key: tuple[Any, ...], load: Callable[[], Any]) -> Any:
    """One instance per key in this process, loaded on first use."""
    with _shared_lock:
        if key not in _shared_models:
            _shared_models[key] = load()
        return _shared_models[key]

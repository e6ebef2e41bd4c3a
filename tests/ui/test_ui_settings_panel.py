"""The chat's settings panel says how the engine sits in memory and takes a new placement."""

from __future__ import annotations

import pytest

from promptartisan.settings import Settings
from promptartisan.ui.handlers import PANEL_SETTINGS
from promptartisan.ui.settings_panel import settings_panel


@pytest.mark.slow
def test_the_panel_shows_the_engines_memory_and_why(tiny_settings: Settings) -> None:
    settings = tiny_settings.model_copy(update={"memory": "group-offload", "quantize": "int8"})
    widgets = {widget.id: widget for widget in settings_panel(settings, ["rules"]).inputs}
    memory = widgets["memory"]
    assert memory.initial == "group-offload"
    assert memory.values == ["auto", "offload", "group-offload", "none"]
    assert memory.description.startswith("In use: memory group-offload (memory = group-offload "
                                         "(set); the weights take ")
    assert "quantize int8" in memory.description
    assert set(widgets) <= set(PANEL_SETTINGS)

"""What the chat tells the person when something stands in the way: models missing from this
machine (and whether the hub can be reached to fetch them), a turn that failed, an exception.
Each says what to do about it; the chat goes on."""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING

from promptartisan import models
from promptartisan.settings import Settings
from promptartisan.tools.images import InvalidImageError
from promptartisan.ui.render import escape_markdown as md
from promptartisan.ui.shown import ActionButton, Emitter

if TYPE_CHECKING:
    from promptartisan.ui.handlers import ChatController

log = logging.getLogger(__name__)

HUB_HOST = ("huggingface.co", 443)
OUT_OF_MEMORY = (
    "Ran out of memory on this request. Try fewer edits at once, fewer steps in the settings "
    "panel, or a smaller picture. Nothing was changed, and the chat goes on."
)
TRY_AGAIN = "Every version so far is kept; try again, or rephrase the request."


def required_models(settings: Settings) -> list[str]:
    """The models an edit needs with these settings: the engine and the grounding backend."""
    grounding = settings.resolved_grounding_backend()
    return ["instruct-pix2pix", *(["clipseg"] if grounding == "clipseg"
                                  else ["groundingdino", "sam"])]


def missing_models(settings: Settings) -> list[str]:
    """Required models that are neither a local folder nor in the Hugging Face cache."""
    if settings.tiny:
        return []
    present = {row["name"] for row in models.cached(settings) if row["present"]}
    return [name for name in required_models(settings) if name not in present]


def hub_reachable(timeout: float = 2.0) -> bool:
    """Whether models could be downloaded now (offline mode counts as no)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection(HUB_HOST, timeout=timeout):
            return True
    except OSError:
        return False


class Reports:
    """The chat's reports of what stands in the way, shown through its controller's emitter."""

    def __init__(self, chat: ChatController) -> None:
        self._chat = chat

    @property
    def emitter(self) -> Emitter:
        return self._chat.emitter

    def models(self) -> None:
        """The welcome's word on models an edit needs and this machine lacks."""
        missing = missing_models(self._chat.settings)
        if not missing:
            return
        names = ", ".join(f"`{name}`" for name in missing)
        if hub_reachable():
            self.emitter.text(f"The models {names} aren't on this machine yet; the first edit "
                              "downloads them (several GB), or run `promptartisan models "
                              "download` beforehand.")
            return
        self.emitter.error(
            f"The models {names} aren't on this machine and the Hugging Face hub can't be "
            "reached, so real edits can't run. To fix it, run `promptartisan models download` "
            "where there is internet (or copy the model folders here and point "
            "`PROMPTARTISAN_INSTRUCT_PIX2PIX` etc. at them), then restart the chat. "
            "Meanwhile you can try the flow with the tiny demo models.",
            [ActionButton("use_tiny", "Use the tiny demo models")],
        )

    def failed_turn(self, message: str, error: BaseException | None) -> None:
        """The Editor's message, plus what the person can do about the error behind it."""
        if error is not None and is_out_of_memory(error):
            self.emitter.error(OUT_OF_MEMORY)
        elif isinstance(error, models.MissingModelError):
            self.emitter.error(message, [ActionButton("use_tiny", "Use the tiny demo models")])
        elif error is not None:  # a failure, not a refusal that says what to do itself
            self.emitter.error(f"{message} {TRY_AGAIN}")
        else:
            self.emitter.error(message)

    def exception(self, exc: Exception) -> None:
        """An exception a request raised, as a message that says what to do."""
        if isinstance(exc, models.MissingModelError):
            self.emitter.error(f"A model is missing: {md(str(exc))}",
                               [ActionButton("use_tiny", "Use the tiny demo models")])
        elif isinstance(exc, InvalidImageError):
            self.emitter.error(f"That picture can't be used: {md(str(exc))}. Attach a photo "
                               "(PNG, JPEG, WebP…) instead.")
        elif is_out_of_memory(exc):
            self.emitter.error(OUT_OF_MEMORY)
        elif isinstance(exc, models.ModelError):
            self.emitter.error(f"A model can't be loaded: {md(str(exc))}. Check the model "
                               "settings, or run `promptartisan models download`.")
        else:
            log.exception("chat request failed")
            self.emitter.error(f"Something went wrong: {md(str(exc))}. {TRY_AGAIN}")


def is_out_of_memory(exc: BaseException) -> bool:
    """A failure for want of memory: the host's or the device's."""
    if isinstance(exc, MemoryError):
        return True
    try:
        import torch
    except ImportError:
        return False
    return isinstance(exc, torch.OutOfMemoryError)

"""The Chainlit app: a thin adapter that feeds Chainlit's events to a `ChatController` and shows
what the controller emits with Chainlit's messages, steps, images and buttons.

Started by `promptartisan chat` (`chainlit run` on this file). The controller's calls block
(a turn runs a diffusion model), so they run in a worker thread (`cl.make_async`); the emitter
posts back to the event loop with `cl.run_sync`. Chainlit's server answers only its own page
(`SameOriginOnly`, added to it here, before it starts).
"""

from __future__ import annotations

import json
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

import chainlit as cl
from chainlit.config import config as chainlit_config
from chainlit.input_widget import Select, Slider, Switch, TextInput
from chainlit.server import app as chainlit_server
from chainlit.utils import utc_now

from promptartisan.settings import Settings, load_settings
from promptartisan.ui.handlers import (
    ActionButton,
    ChatController,
    HistoryView,
    Picture,
    StepUpdate,
    Upload,
    compare_props,
    history_props,
)
from promptartisan.ui.origin import SameOriginOnly, served_hosts
from promptartisan.ui.render import png_bytes

ACTION_NAMES = ("undo", "redo", "reset", "masks", "compare", "download", "export", "answer",
                "use_tiny", "resume", "add_to", "retry", "go")
CONTROLLER = "controller"
SESSION_IDS = "session_ids"  # kept in the user session so a data layer can resume the chat

chainlit_server.add_middleware(
    SameOriginOnly, hosts=served_hosts(chainlit_config.run.host, chainlit_config.run.port))


class ChainlitEmitter:
    """The controller's `Emitter`, called from its worker thread."""

    def __init__(self) -> None:
        self._steps: dict[str, cl.Step] = {}
        self._posted = 0  # messages and steps sent so far
        # Each picture's history message and element, and `_posted` when it was last sent.
        self._histories: dict[str, tuple[cl.Message, cl.CustomElement, int]] = {}

    def text(self, text: str, actions: Sequence[ActionButton] = ()) -> None:
        self._send(cl.Message(content=text, actions=_actions(actions)).send())

    def pictures(self, text: str, pictures: Sequence[Picture],
                 actions: Sequence[ActionButton] = ()) -> None:
        self._send(cl.Message(content=text, elements=_images(pictures),
                              actions=_actions(actions)).send())

    def file(self, text: str, path: Path, name: str) -> None:
        element = cl.File(name=name, path=str(path), display="inline")
        self._send(cl.Message(content=text, elements=[element]).send())

    def ask(self, question: str, choices: Sequence[str],
            pictures: Sequence[Picture] = ()) -> None:
        buttons = [ActionButton("answer", choice, {"text": choice}) for choice in choices]
        self._send(cl.Message(content=question, elements=_images(pictures),
                              actions=_actions(buttons)).send())

    def error(self, text: str, actions: Sequence[ActionButton] = ()) -> None:
        self._send(cl.Message(content=f"**Sorry —** {text}", actions=_actions(actions)).send())

    def step(self, update: StepUpdate) -> None:
        step = self._steps.get(update.key)
        if step is None:
            # A child of the running request (like the messages it sends), so the steps show
            # in order with them; None for button clicks, which run outside a request.
            run = cl.context.current_step
            step = cl.Step(name=update.title, type="tool", parent_id=run.id if run else None,
                           default_open=True, show_input=False)
            step.start = utc_now()
            self._steps[update.key] = step
            self._send(step.send())
        step.output = update.text
        step.elements = _images(update.pictures)
        step.is_error = update.failed
        if update.done:
            step.end = utc_now()
        self._send(step.update())
        step.elements = []  # sent once; don't resend (or keep) the images on later updates

    def history(self, view: HistoryView) -> None:
        """Changed in place while it is the chat's last message; else moved to the end."""
        props = history_props(view)
        shown = self._histories.get(view.session)
        if shown is not None and shown[2] == self._posted:
            message, element, _ = shown
            element.props, element.content = props, json.dumps(props)
            message.content = view.caption
            cl.run_sync(message.update())
        else:
            if shown is not None:
                cl.run_sync(shown[0].remove())
            element = cl.CustomElement(name="HistoryStrip", props=props, display="inline")
            message = cl.Message(content=view.caption, elements=[element])
            self._send(message.send())
        self._histories[view.session] = (message, element, self._posted)

    def compare(self, text: str, before: Picture, after: Picture,
                labels: tuple[str, str]) -> None:
        slider = cl.CustomElement(name="CompareSlider", props=compare_props(before, after, labels),
                                  display="inline")
        self._send(cl.Message(content=text, elements=[slider]).send())

    def _send(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        self._posted += 1
        cl.run_sync(coroutine)


def _actions(buttons: Sequence[ActionButton]) -> list[cl.Action]:
    return [cl.Action(name=button.name, label=button.label, payload=dict(button.payload))
            for button in buttons]


def _images(pictures: Sequence[Picture]) -> list[cl.Image]:
    return [cl.Image(name=picture.name, content=png_bytes(picture.image), display="inline",
                     size="large", mime="image/png") for picture in pictures]


def settings_panel(settings: Settings, planners: Sequence[str]) -> cl.ChatSettings:
    """The settings panel; widget ids are the Settings fields they change, and each range
    reaches the current value (a config file may set more than the usual maximum)."""
    return cl.ChatSettings([
        Slider(id="steps", label="Steps", initial=settings.steps, min=1,
               max=max(100, settings.steps), step=1,
               description="Denoising steps: more is slower and finer."),
        Slider(id="guidance_scale", label="Text guidance", initial=settings.guidance_scale,
               min=0, max=max(20, settings.guidance_scale), step=0.5,
               description="How strongly the edit follows the words."),
        Slider(id="image_guidance_scale", label="Image guidance",
               initial=settings.image_guidance_scale, min=0,
               max=max(5, settings.image_guidance_scale), step=0.1,
               description="How closely the result keeps to the picture."),
        TextInput(id="seed", label="Seed", initial="" if settings.seed is None
                  else str(settings.seed), placeholder="random",
                  description="A number makes results repeatable; empty means random."),
        Switch(id="preserve_background", label="Keep the background pixel-exact",
               initial=settings.preserve_background,
               description="Pixels far from every mask stay the original's."),
        Select(id="planner", label="Planner", values=list(planners),
               initial_value=settings.planner,
               description="Who reads the request: the planner the chat was started with, "
                           "or the offline rules planner."),
        Select(id="grounding_backend", label="Grounding", values=["auto", "clipseg",
               "grounded-sam"], initial_value=settings.grounding_backend,
               description="Finds each region: CLIPSeg (fast on CPU) or Grounded-SAM (GPU)."),
    ])


def _controller() -> ChatController:
    controller = cl.user_session.get(CONTROLLER)
    if controller is None:  # a chat whose server restarted: start afresh, sessions are on disk
        controller = ChatController(load_settings(), ChainlitEmitter())
        cl.user_session.set(CONTROLLER, controller)
    return controller


async def _begin(session_ids: Sequence[str] = ()) -> ChatController:
    controller = ChatController(load_settings(), ChainlitEmitter(), session_ids=session_ids)
    cl.user_session.set(CONTROLLER, controller)
    cl.user_session.set(SESSION_IDS, list(session_ids))
    await settings_panel(controller.settings, controller.planner_choices).send()
    return controller


@cl.on_chat_start
async def on_chat_start() -> None:
    controller = await _begin()
    await cl.make_async(controller.start)()


@cl.on_chat_resume
async def on_chat_resume(thread: dict[str, Any]) -> None:
    """Only with a Chainlit data layer: reopen the chat's sessions from the thread's metadata."""
    metadata = thread.get("metadata") or {}
    if isinstance(metadata, str):  # some data layers store it as JSON text
        metadata = json.loads(metadata)
    session_ids = list(metadata.get(SESSION_IDS) or [])
    controller = await _begin(session_ids)
    await cl.make_async(controller.reopen)()


@cl.on_message
async def on_message(message: cl.Message) -> None:
    controller = _controller()
    uploads = [Upload(element.name, path=Path(element.path))
               for element in message.elements or [] if getattr(element, "path", None)]
    await cl.make_async(controller.message)(message.content or "", uploads)
    cl.user_session.set(SESSION_IDS, controller.session_ids)


@cl.on_stop
async def on_stop() -> None:
    _controller().stop()


@cl.on_settings_update
async def on_settings_update(values: dict[str, Any]) -> None:
    await cl.make_async(_controller().update_settings)(values)


async def on_action(action: cl.Action) -> None:
    controller = _controller()
    await cl.make_async(controller.action)(action.name, action.payload or {})
    cl.user_session.set(SESSION_IDS, controller.session_ids)


for _name in ACTION_NAMES:
    cl.action_callback(_name)(on_action)

"""The Chainlit app: a thin adapter that feeds Chainlit's events to a `ChatController` and shows
what the controller emits with Chainlit's messages, steps, images and buttons.

Started by `promptartisan chat` (`chainlit run` on this file). The controller's calls block
(a turn runs a diffusion model), so they run in a worker thread (`cl.make_async`); the emitter
posts back to the event loop with `cl.run_sync`. Chainlit's server answers only its own page
(`SameOriginOnly`, added to it here, before it starts).

Chats survive a reload and a restart: Chainlit's data layer keeps them in the state folder
(ui/data_layer.py) and lists them in its sidebar; a resumed chat reopens its sessions, its own
place in their histories and its settings from the thread's metadata. Chainlit lists threads
per user: on a loopback host the page signs in as the one local user, elsewhere each person
signs in (ui/auth.py) and sees, resumes and opens only their own threads and sessions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Annotated, Any

import chainlit as cl
import chainlit.config
import chainlit.server
from chainlit.auth import get_current_user
from chainlit.config import APP_ROOT
from chainlit.config import config as chainlit_config
from chainlit.data import get_data_layer
from chainlit.server import app as chainlit_server
from chainlit.user import PersistedUser
from chainlit.utils import utc_now
from fastapi import Depends, HTTPException
from fastapi.responses import FileResponse

from promptartisan.settings import load_settings
from promptartisan.ui.auth import LOCAL_USER, chat_secret, check_secret, password_matches
from promptartisan.ui.data_layer import (
    ELEMENTS_DIR,
    ELEMENTS_ROUTE,
    ChatDataLayer,
    LocalStorage,
    OwnedSessions,
    SessionOwners,
    chat_data_layer,
    element_path,
)
from promptartisan.ui.files_folder import own_files_folder
from promptartisan.ui.handlers import ChatController
from promptartisan.ui.local_sign_in import LocalSignIn
from promptartisan.ui.origin import SameOriginOnly, is_loopback, served_hosts
from promptartisan.ui.render import png_bytes
from promptartisan.ui.selection_view import ACTIONS as SELECTION_ACTIONS
from promptartisan.ui.selection_view import SELECTION, candidate_props
from promptartisan.ui.settings_panel import settings_panel
from promptartisan.ui.shown import (
    ActionButton,
    HistoryView,
    Picture,
    StepUpdate,
    Upload,
    compare_props,
    download_props,
    history_props,
)

ACTION_NAMES = ("undo", "redo", "reset", "masks", "compare", "download", "export", "answer",
                "use_tiny", "resume", "add_to", "retry", "go",
                *(name for name in SELECTION_ACTIONS if name != SELECTION))
CONTROLLER = "controller"
SESSION_IDS = "session_ids"  # in the thread's metadata: the sessions a resumed chat reopens
OWNED = "owned_sessions"  # in the thread's metadata: every session the chat had
VIEW = "view"  # in the thread's metadata: where the chat left each session's history
REOPENED = "reopened"  # in the thread's metadata: what the last reopen posted, while it is last
QUESTION = "question"  # in the thread's metadata: the key of the question awaiting an answer
CHAT_SETTINGS = "chat_settings"  # Chainlit's key for the settings panel's values
WRITTEN = "metadata_written"  # what `_remember` last wrote, so it writes only changes

CHAINLIT_STOPPED = "Task manually stopped."  # what Chainlit posts when the stop button is pressed
UPLOADS_WITHOUT_CONFIG = 10  # config.toml's `max_files`, should a config lack it
TOO_MANY_UPLOADS = ("**Sorry —** one message takes at most {limit} pictures, and this one has "
                    "{count}: nothing was done. Send them in groups of {limit} or fewer.")

REOPEN_FAILED = ("**Sorry —** this chat's pictures couldn't be reopened (the server's log says "
                 "why); their files are kept. Reload the page to try again.")

log = logging.getLogger(__name__)
STATE = Path(APP_ROOT)  # the state folder `promptartisan chat` starts the server in
LOOPBACK = is_loopback(chainlit_config.run.host)
SECRET = chat_secret()
check_secret(chainlit_config.run.host, SECRET, LOOPBACK)  # a server beyond loopback needs one
OWNERS = SessionOwners(STATE)
ELEMENTS = LocalStorage(STATE / ELEMENTS_DIR)
# Uploads go to this server's own folder, which Chainlit deletes when it stops (it deleted the
# whole `.files` folder, under every other chat on this state folder).
chainlit.config.FILES_DIRECTORY = chainlit.server.FILES_DIRECTORY = own_files_folder(
    STATE / ".files")

if LOOPBACK:  # inside SameOriginOnly: a refused request never reaches it
    chainlit_server.add_middleware(LocalSignIn)
chainlit_server.add_middleware(
    SameOriginOnly, hosts=served_hosts(chainlit_config.run.host, chainlit_config.run.port))


@cl.data_layer
def data_layer() -> ChatDataLayer:
    return chat_data_layer(STATE)


if LOOPBACK:
    @cl.header_auth_callback
    async def local_user(headers: Any) -> cl.User:
        """The person at this machine, without a password: the only user a loopback chat has."""
        return cl.User(identifier=LOCAL_USER)
else:
    @cl.password_auth_callback
    async def signed_in(name: str, password: str) -> cl.User | None:
        """A person with the password made for their name from the chat's secret."""
        assert SECRET is not None  # check_secret refused to start without one
        return cl.User(identifier=name) if password_matches(SECRET, name, password) else None


async def element_file(object_key: str,
                       user: Annotated[Any, Depends(get_current_user)]) -> FileResponse:
    """A saved picture of a resumed chat, for its owner only."""
    layer = get_data_layer()
    path = await element_path(layer, ELEMENTS, object_key, user.id) \
        if isinstance(user, PersistedUser) and isinstance(layer, ChatDataLayer) else None
    if path is None:
        raise HTTPException(status_code=404, detail="No such element")
    return FileResponse(path)


# Before Chainlit's catch-all route, which would answer with its page.
chainlit_server.add_api_route(ELEMENTS_ROUTE + "/{object_key:path}", element_file,
                              methods=["GET"])
chainlit_server.router.routes.insert(0, chainlit_server.router.routes.pop())


class ChainlitEmitter:
    """The controller's `Emitter`, called from its worker thread."""

    def __init__(self) -> None:
        self._steps: dict[str, cl.Step] = {}
        self._posted = 0  # messages and steps sent so far
        # Each picture's history message and element, and `_posted` when it was last sent
        # (-1: one in the saved transcript, replaced by the next one shown).
        self._histories: dict[str, tuple[cl.Message, cl.CustomElement | None, int]] = {}
        # The messages a reopen posted, while nothing came after them: the next reopen takes
        # them out of the transcript, so reloads don't pile them up.
        self.reopening = False
        self.reopened: list[str] = []
        # The questions not yet closed: their buttons and their canvases of boxes.
        self._questions: list[tuple[list[cl.Action], list[cl.CustomElement]]] = []
        # Run after each post: keeps the thread's metadata current while a turn runs.
        self.after_post: Callable[[], Coroutine[Any, Any, None]] | None = None

    def learn(self, thread: dict[str, Any]) -> set[str]:
        """The history elements of a saved transcript, so the chat's next one for the same
        picture replaces them instead of adding another; and its questions' boxes still
        open, so they close when the question is answered (their buttons weren't saved).
        Returns the messages of older history elements of a picture that has a newer one
        (another window on the chat posted it): stale, for the caller to take out."""
        order = {step.get("id"): k for k, step in enumerate(thread.get("steps") or [])}
        stale: set[str] = set()
        for element in thread.get("elements") or []:
            props = element.get("props")
            if not isinstance(props, dict) or element.get("forId") not in order:
                continue
            if element.get("name") == "HistoryStrip":
                session, message_id = str(props.get("session")), str(element["forId"])
                known = self._histories.get(session)
                if known is not None and order[known[0].id] > order[message_id]:
                    stale.add(message_id)
                    continue
                if known is not None:
                    stale.add(known[0].id)
                self._histories[session] = (cl.Message(content="", id=message_id), None, -1)
            elif props.get("mode") == "choose" and not props.get("closed"):
                canvas = cl.CustomElement(name=str(element["name"]), props=props,
                                          display="inline", id=str(element["id"]),
                                          for_id=str(element["forId"]))
                self._questions.append(([], [canvas]))
        return stale

    def text(self, text: str, actions: Sequence[ActionButton] = ()) -> None:
        self._post(cl.Message(content=text, actions=_actions(actions)))

    def pictures(self, text: str, pictures: Sequence[Picture],
                 actions: Sequence[ActionButton] = ()) -> None:
        self._post(cl.Message(content=text, elements=_images(pictures),
                              actions=_actions(actions)))

    def file(self, text: str, path: Path, name: str) -> None:
        element = cl.File(name=name, path=str(path), display="inline")
        self._post(cl.Message(content=text, elements=[element]))

    def download(self, text: str, path: Path, name: str) -> None:
        element = cl.CustomElement(name="DownloadFile", props=download_props(path, name),
                                   display="inline")
        self._post(cl.Message(content=text, elements=[element]))

    def ask(self, question: str, choices: Sequence[str],
            pictures: Sequence[Picture] = (), key: str = "") -> None:
        numbered = len(next((p.boxes for p in pictures if p.boxes), ()))
        buttons = [ActionButton("answer", f"{k}: {choice}" if k <= numbered else choice,
                                {"text": choice, "question": key})
                   for k, choice in enumerate(choices, start=1)]
        # A picture with numbered boxes is a canvas a click on a box answers.
        elements = [cl.CustomElement(name="SelectionCanvas", display="inline",
                                     props=candidate_props(p, p.boxes, choices, key))
                    if p.boxes else _images([p])[0] for p in pictures]
        message = cl.Message(content=question, elements=elements, actions=_actions(buttons))
        self._post(message)
        self._questions.append((message.actions, [e for e in elements
                                                  if isinstance(e, cl.CustomElement)]))

    def close_questions(self) -> None:
        for actions, canvases in self._questions:
            for action in actions:
                cl.run_sync(action.remove())
            for canvas in canvases:  # its boxes, in the page and the saved transcript
                canvas.props = {**canvas.props, "closed": True}
                canvas.content = json.dumps(canvas.props)
                cl.run_sync(canvas.update())
        self._questions = []

    def error(self, text: str, actions: Sequence[ActionButton] = ()) -> None:
        self._post(cl.Message(content=f"**Sorry —** {text}", actions=_actions(actions)))

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
            self._post(step)
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
        if shown is not None and shown[1] is not None and shown[2] == self._posted:
            message, element, _ = shown
            element.props, element.content = props, json.dumps(props)
            message.content = view.caption
            cl.run_sync(message.update())
        else:
            if shown is not None:
                cl.run_sync(shown[0].remove())
            element = cl.CustomElement(name="HistoryStrip", props=props, display="inline")
            message = cl.Message(content=view.caption, elements=[element])
            self._post(message)
        self._histories[view.session] = (message, element, self._posted)

    def compare(self, text: str, before: Picture, after: Picture,
                labels: tuple[str, str]) -> None:
        slider = cl.CustomElement(name="CompareSlider", props=compare_props(before, after, labels),
                                  display="inline")
        self._post(cl.Message(content=text, elements=[slider]))

    def canvas(self, text: str, props: dict[str, Any]) -> None:
        element = cl.CustomElement(name="SelectionCanvas", props=props, display="inline")
        self._post(cl.Message(content=text, elements=[element]))

    def _post(self, message: cl.Message | cl.Step) -> None:
        """Send a new message or step; a reopen's are kept in `reopened`, and anything else
        posted after them makes them part of the conversation."""
        if not self.reopening:
            self.reopened = []
        elif isinstance(message, cl.Message):
            self.reopened.append(message.id)
        self._send(message.send())

    def _send(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        self._posted += 1
        cl.run_sync(coroutine)
        if self.after_post is not None:
            cl.run_sync(self.after_post())


def _actions(buttons: Sequence[ActionButton]) -> list[cl.Action]:
    return [cl.Action(name=button.name, label=button.label, payload=dict(button.payload))
            for button in buttons]


def _images(pictures: Sequence[Picture]) -> list[cl.Image]:
    return [cl.Image(name=picture.name, content=png_bytes(picture.image), display="inline",
                     size="large", mime="image/png") for picture in pictures]


def upload_limit() -> int:
    """Files one message may bring: the page's own limit (config.toml's `max_files`)."""
    spec = chainlit_config.features.spontaneous_file_upload
    return spec.max_files if spec is not None and spec.max_files else UPLOADS_WITHOUT_CONFIG


def _sessions() -> Any:
    """The sessions this chat's user may see: all of them for the local user, else theirs."""
    if LOOPBACK:
        return None  # the controller's default, `Session`
    user = cl.context.session.user
    if user is None:
        raise PermissionError("a chat beyond loopback needs a signed-in user")
    return OwnedSessions(OWNERS, user.identifier)


def _new_controller() -> ChatController:
    emitter = ChainlitEmitter()
    controller = ChatController(load_settings(), emitter, sessions=_sessions())
    # A page that reloads during a turn resumes with the picture the turn works on.
    emitter.after_post = lambda: _remember(controller)
    cl.user_session.set(CONTROLLER, controller)
    return controller


def _emitter(controller: ChatController) -> ChainlitEmitter:
    assert isinstance(controller.emitter, ChainlitEmitter)
    return controller.emitter


def _controller() -> ChatController:
    controller = cl.user_session.get(CONTROLLER)
    if controller is None:  # a chat whose server restarted: start afresh, sessions are on disk
        controller = _new_controller()
    return controller


async def _remember(controller: ChatController) -> None:
    """Write what a resumed chat needs into the thread's metadata now (Chainlit itself writes
    the user session only when the page disconnects, which a stopped server never sees)."""
    session = cl.context.session
    metadata = {SESSION_IDS: list(controller.session_ids), OWNED: sorted(controller.own),
                VIEW: controller.saved_view, REOPENED: list(_emitter(controller).reopened),
                QUESTION: controller.question,
                CHAT_SETTINGS: session.chat_settings}
    cl.user_session.set(SESSION_IDS, metadata[SESSION_IDS])
    cl.user_session.set(VIEW, metadata[VIEW])  # Chainlit writes it at a disconnect
    layer = get_data_layer()
    if layer is None or not session.thread_id or not session.has_first_interaction \
            or cl.user_session.get(WRITTEN) == metadata:
        return
    await layer.update_thread(session.thread_id, metadata=metadata)
    cl.user_session.set(WRITTEN, json.loads(json.dumps(metadata)))


async def _send_settings_panel(controller: ChatController) -> None:
    """The settings panel, made in a worker thread: it names the engine's memory setup, which
    imports the engine (diffusers, transformers: seconds at a process's first chat), and on the
    event loop that import froze every other chat and request."""
    panel = await cl.make_async(settings_panel)(controller.settings, controller.planner_choices)
    await panel.send()


@cl.on_chat_start
async def on_chat_start() -> None:
    controller = _new_controller()
    await _send_settings_panel(controller)
    await cl.make_async(controller.start)()
    await _remember(controller)


@cl.on_chat_resume
async def on_chat_resume(thread: dict[str, Any]) -> None:
    """A chat from Chainlit's sidebar, or reloaded: its sessions (every one it had), its
    place in them and its settings come back from the thread's metadata (Chainlit shows the
    transcript). The window gets a view of its own that starts at the saved place: a second
    window opened on the same chat never moves this one's."""
    metadata = thread.get("metadata") or {}
    if isinstance(metadata, str):  # SQLite keeps it as JSON text
        metadata = json.loads(metadata)
    controller = _new_controller()
    view, question = metadata.get(VIEW), metadata.get(QUESTION)
    controller.carry_on([str(i) for i in metadata.get(SESSION_IDS) or []],
                        [str(i) for i in metadata.get(OWNED) or []],
                        view if isinstance(view, str) else None,
                        question if isinstance(question, str) else None)
    emitter = cl.context.emitter
    send_thread = emitter.resume_thread

    async def resume_then_reopen(thread_dict: Any) -> None:
        """Chainlit sends the saved transcript after this hook returns, and the page replaces
        whatever came before it: so the chat speaks (its settings, its picture with buttons,
        which the transcript lacks) only after the transcript is there. What the last reopen
        posted, if nothing came after it, leaves the transcript first: a reload adds nothing."""
        log.info("resuming thread %s: sessions %s, view %s", thread.get("id"),
                 metadata.get(SESSION_IDS), view)
        shown = _emitter(controller)
        await _drop(thread_dict, {str(i) for i in metadata.get(REOPENED) or []})
        await _drop(thread_dict, shown.learn(thread_dict))
        await send_thread(thread_dict)
        if metadata.get(CHAT_SETTINGS):
            await cl.make_async(controller.update_settings)(metadata[CHAT_SETTINGS],
                                                            announce=False)
        await _send_settings_panel(controller)
        shown.reopening = True
        try:
            await cl.make_async(controller.reopen)()
        except Exception:  # the transcript is there; say what is missing, keep the chat
            log.exception("reopening thread %s failed", thread.get("id"))
            await cl.Message(content=REOPEN_FAILED).send()
        finally:
            shown.reopening = False
        await _remember(controller)
        log.info("resumed thread %s", thread.get("id"))

    emitter.resume_thread = resume_then_reopen  # this session's emitter only


async def _drop(thread: dict[str, Any], step_ids: set[str]) -> None:
    """Take messages out of a saved transcript, before it is sent, and out of the database."""
    if not step_ids:
        return
    thread["steps"] = [step for step in thread.get("steps") or []
                       if step.get("id") not in step_ids]
    thread["elements"] = [element for element in thread.get("elements") or []
                          if element.get("forId") not in step_ids]
    layer = get_data_layer()
    for step_id in step_ids if layer is not None else ():
        await layer.delete_step(step_id)


@cl.on_message
async def on_message(message: cl.Message) -> None:
    controller = _controller()
    uploads = [Upload(element.name, path=Path(element.path))
               for element in message.elements or [] if getattr(element, "path", None)]
    limit = upload_limit()
    if len(uploads) > limit:  # the page stops at the limit; a client of its own may not
        await cl.Message(content=TOO_MANY_UPLOADS.format(count=len(uploads), limit=limit)).send()
        return
    await cl.make_async(controller.message)(message.content or "", uploads)
    await _remember(controller)


@cl.on_stop
async def on_stop() -> None:
    """The stop button. Chainlit posts a note of its own first; the turn says what a stop
    did ("Stopped. Nothing was changed…"), so the note goes: one message per stop."""
    for message in reversed(cl.chat_context.get()):
        if message.content == CHAINLIT_STOPPED:
            await message.remove()
            break
    _controller().stop()


@cl.on_settings_update
async def on_settings_update(values: dict[str, Any]) -> None:
    controller = _controller()
    await cl.make_async(controller.update_settings)(values)
    await _remember(controller)


async def on_action(action: cl.Action) -> None:
    controller = _controller()
    fresh = not controller.session_ids
    await cl.make_async(controller.action)(action.name, action.payload or {})
    session = cl.context.session
    layer = get_data_layer()
    if action.name == "resume" and fresh and controller.session_ids and layer is not None \
            and session.thread_id:
        # Chainlit names a thread after its first action ("resume"): name it after the picture.
        await layer.update_thread(session.thread_id, name=controller.offers.title)
    await _remember(controller)


for _name in ACTION_NAMES:
    cl.action_callback(_name)(on_action)


@cl.action_callback(SELECTION)
async def on_selection(action: cl.Action) -> dict[str, Any]:
    """A gesture or button of a selection canvas: its answer goes back to the canvas (the
    return value of its `callAction`), so the overlay follows in the same round trip."""
    controller = _controller()
    answer = await cl.make_async(controller.selection.act)(action.payload or {})
    await _remember(controller)
    return answer

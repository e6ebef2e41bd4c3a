"""A canvas gesture can't freeze the real chat server (`promptartisan chat --tiny` on a
localhost port, driven over socket.io and HTTP as the page drives it): a stroke of far-off
points is answered at once, and the server answers `/health` while a slow gesture of another
chat window runs."""

from __future__ import annotations

import io
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chat_client import ChatClient
from chat_server import serve_chat
from PIL import Image

pytestmark = pytest.mark.slow  # real chat servers: seconds to start

FAR_OFF = [[10, 10], [-1e12, 5], [10, 10], [-1e12, 5]]  # the probe's stroke, radius 3
ANSWER_S = 1.0  # the bound for the far-off gesture
HEALTH_S = 0.1  # the bound for /health while a gesture runs, met by half the answers
# (not 9 in 10: while SAM's first load runs, with the suite's other worker on the second core,
# three answers in a row took 0.19-0.41 s, out of a run of about twenty)
# Every answer within this: on a loaded two-core test machine the scheduler alone delays some
# answers by tens of milliseconds (42 ms at worst with no gesture running, load average 7), and
# by 0.65 s once while the suite's other worker started three chat servers; a frozen server
# (the probe's: 13.5 s; a first chat's start on the event loop: 10.2 s) misses it by far.
HEALTH_WORST_S = 1.0


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, tiny_dir: Path) -> Iterator[str]:
    with serve_chat(tmp_path_factory.mktemp("chat"), tiny_dir, "--tiny") as served:
        yield served


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").resize(size).save(buffer, format="PNG")
    return buffer.getvalue()


def open_canvas(chat: ChatClient, size: tuple[int, int]) -> str:
    """Upload a picture of `size`, press "Select on the picture": the canvas's token."""
    status, answer = chat.upload("picture.png", png(size))
    assert status == 200, answer

    chat.send("", [json.loads(answer)["id"]])
    select = chat.button("select")
    status, _ = chat.action("select", select["payload"])
    assert status == 200
    element = chat.wait_for(lambda event, data: event == "element"
                            and (data.get("props") or {}).get("mode") == "select")
    return str(element["props"]["canvas"])


def gesture(chat: ChatClient, canvas: str, points: list[list[float]], radius: float = 8,
            kind: str = "brush", number: int | None = None) -> tuple[float, dict[str, Any]]:
    """A gesture on the canvas: seconds until the answer, and the answer."""
    started = time.monotonic()
    status, answer = chat.action("selection", {"canvas": canvas, "op": "gesture", "kind": kind,
                                               "points": points, "radius": radius,
                                               "number": number})
    assert status == 200, answer
    return time.monotonic() - started, answer


def health_seconds(url: str) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(f"{url}/health", timeout=30) as response:
        assert response.status == 200
    return time.monotonic() - started


def test_a_stroke_of_far_off_points_is_answered_at_once(url: str) -> None:
    with ChatClient(url) as chat:
        canvas = open_canvas(chat, (64, 48))
        seconds, answer = gesture(chat, canvas, FAR_OFF, 3)
        assert seconds < ANSWER_S, seconds
        assert not answer["ok"] and "pixels long" in answer["state"]["message"]
        # The canvas goes on: a stroke that leaves the picture is clipped and paints.
        seconds, answer = gesture(chat, canvas, [[10, 10], [-5000, 5]], 3)
        assert answer["ok"] and answer["number"] == 1, answer
        assert seconds < ANSWER_S, seconds


def assert_answered(latencies: list[float], context: object) -> None:
    """/health answered while the work ran, within the bounds above."""
    latencies = sorted(latencies)
    assert len(latencies) >= 5, (context, latencies)
    assert latencies[len(latencies) // 2] < HEALTH_S, (context, latencies[-10:])
    assert latencies[-1] < HEALTH_WORST_S, (context, latencies[-10:])


def latencies_during(url: str, work: Callable[[], Any]) -> list[float]:
    """`/health`'s answer times, asked again and again while `work` runs in a thread."""
    running = threading.Thread(target=work)
    latencies = []
    running.start()
    while running.is_alive():
        latencies.append(health_seconds(url))
        time.sleep(0.02)
    running.join()
    return latencies


def test_health_answers_while_another_chats_slow_stroke_runs(url: str) -> None:
    """The slowest stroke there is: each segment across a big picture, the widest brush, as
    long as a stroke may be. It runs in a worker thread, and what it runs lets go of the
    interpreter."""
    size = (3000, 3000)
    with ChatClient(url) as chat:
        canvas = open_canvas(chat, size)
        sides = [[0, 0], [size[0], size[1]]]
        stroke = [sides[k % 2] for k in range(300)]  # 300 diagonals: 425 long sides in all
        answers: list[tuple[float, dict[str, Any]]] = []
        latencies = latencies_during(url, lambda: answers.append(
            gesture(chat, canvas, stroke, max(size))))
    seconds, answer = answers[0]
    assert answer["ok"], answer
    assert_answered(latencies, seconds)


def test_health_answers_while_sam_loads_and_segments(url: str) -> None:
    """Clicks and a box: the first loads SAM and embeds the picture, all in a worker thread."""
    with ChatClient(url) as chat:
        canvas = open_canvas(chat, (640, 480))
        answers: list[tuple[float, dict[str, Any]]] = []

        def select() -> None:
            answers.append(gesture(chat, canvas, [[100, 100]], kind="include"))
            answers.append(gesture(chat, canvas, [[300, 200], [500, 400]], kind="box"))
            answers.append(gesture(chat, canvas, [[120, 110]], kind="exclude", number=1))

        latencies = latencies_during(url, select)
    assert [answer["ok"] for _, answer in answers] == [True] * 3, answers
    assert_answered(latencies, [seconds for seconds, _ in answers])


def test_health_answers_while_a_servers_first_chat_starts(tmp_path: Path,
                                                          tiny_dir: Path) -> None:
    """A new server's first chat imports the engine's libraries (its settings panel names the
    engine's memory setup): in a worker thread, not on the event loop every request shares."""

    def first_chat() -> None:
        with ChatClient(served) as chat:
            chat.text_containing("Welcome to PromptArtisan")

    with serve_chat(tmp_path / "state", tiny_dir, "--tiny") as served:
        latencies = latencies_during(served, first_chat)
    assert_answered(latencies, "the first chat's start")

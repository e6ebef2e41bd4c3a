"""The version tree of one picture laid out for the chat's history element: one lane (row) per
branch, one column per step from the upload, so every version, branches included, has a place
of its own and a click on it can go there."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def tree_layout(parents: Mapping[int, int | None]) -> dict[int, tuple[int, int]]:
    """(row, column) of each version. A version's first child stays on its parent's row; each
    later child starts a new row below every row used so far, so no two lanes cross."""
    children: dict[int | None, list[int]] = {}
    for number in sorted(parents):
        parent = parents[number]
        children.setdefault(parent if parent in parents else None, []).append(number)
    places: dict[int, tuple[int, int]] = {}
    rows = 0
    # The roots, then (in a damaged tree, a cycle) whatever no root reaches.
    for start in [*children.get(None, []), *sorted(parents)]:
        stack: list[tuple[int, int | None]] = [(start, None)]
        while stack:  # depth first, oldest child first; no recursion (a history can be long)
            number, row = stack.pop()
            if number in places:
                continue
            if row is None:
                row, rows = rows, rows + 1
            parent = parents[number]
            column = places[parent][1] + 1 if parent in places else 0
            places[number] = (row, column)
            kids = children.get(number, [])
            stack.extend((kid, None) for kid in reversed(kids[1:]))
            if kids:
                stack.append((kids[0], row))
    return places


def describe(provenance: Mapping[str, Any], regions: list[dict[str, Any]]) -> list[str]:
    """What made a version, one line per instruction: `target → prompt` for an edit's
    regions; for an upload or a retry, a line saying so."""
    lines = [f"{region['target']} → {region['prompt']}" for region in regions]
    lines += [f"took back {forgot['target']} → {forgot['instruction']} (version "
              f"{forgot['version']})" for forgot in provenance.get("forgot") or []]
    if provenance.get("retry_of") is not None:
        lines.insert(0, f"retry of version {provenance['retry_of']} (new seed)")
    if provenance.get("added_from"):
        lines.append("a photo added to this history")
    elif provenance.get("kind") == "upload":
        lines.append("the uploaded photo")
    return lines or ["no edit recorded"]

"""Junk values and the places to put them, for the providers' robustness tests:
every field of a real payload replaced by values no sender should send."""

from __future__ import annotations

import copy
from typing import Any

JUNK: list[Any] = [
    None,
    0,
    -1,
    1e308,
    True,
    "",
    "x" * 100_000,
    "\ud800",
    [],
    {},
    [None, {"a": [1]}],
    {"summary": {"deep": [[[]]]}},
]


def paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += paths(item, (*path, index))
    return found


def replaced(document: Any, path: tuple[Any, ...], junk: Any) -> Any:
    if not path:
        return junk
    result = copy.deepcopy(document)
    target = result
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = junk
    return result

"""The boards this process keeps: the latest version of each phase's public board, for a bounded time.

A board is looked up by its phase and version (``selectors.board_version``); the age limit bounds how long
a change that bypassed the version counter (a raw SQL edit, say) stays hidden. With its pages, charts and
JSON a large board holds several MB, and an older version is never asked for again, so one per phase is kept.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Generic, TypeVar

T = TypeVar("T")
PHASES_KEPT = 32


class BoardCache(Generic[T]):
    """phase id -> (version, board, built at), the least recently used phase forgotten first."""

    def __init__(self, phases_kept: int = PHASES_KEPT) -> None:
        self._boards: OrderedDict[int, tuple[str, T, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.phases_kept = phases_kept

    def get(self, phase_id: int, version: str, max_age: float) -> T | None:
        """The board of this version, if it is kept and younger than ``max_age`` seconds."""
        with self._lock:
            kept = self._boards.get(phase_id)
            if kept is None or kept[0] != version or time.monotonic() - kept[2] >= max_age:
                return None
            self._boards.move_to_end(phase_id)
            return kept[1]

    def put(self, phase_id: int, version: str, board: T) -> None:
        with self._lock:
            self._boards[phase_id] = (version, board, time.monotonic())
            self._boards.move_to_end(phase_id)
            while len(self._boards) > self.phases_kept:
                self._boards.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._boards.clear()


boards: BoardCache = BoardCache()


def clear_cache() -> None:
    """Forget the boards this process keeps (tests, benchmarks)."""
    boards.clear()

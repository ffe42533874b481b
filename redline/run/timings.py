"""Per-stage wall times of a scan, for the manifest's ``timings`` and the console summary.

A scan's steps run one after the other (``stages``: search, probe, the tile loop, alerts,
chips, register, outputs), and the outputs partly side by side on a thread pool (``outputs``:
COGs, assessment, figures, map, report, …, each its own wall time, so that their sum may exceed
the ``outputs`` stage that holds them). Seconds of :func:`time.perf_counter` (monotonic).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Timings"]


class Timings:
    """Wall seconds per named stage and per output kind, safe to add to from several threads.

    ``stage(name)`` times a step of the scan's critical path (they never overlap, so their sum
    is at most the wall time); ``output(kind)`` times one kind of output, possibly on a worker
    thread, alongside others. A name timed twice adds up."""

    def __init__(self) -> None:
        self._t0 = time.perf_counter()
        self._lock = threading.Lock()
        self.stages: dict[str, float] = {}
        self.outputs: dict[str, float] = {}

    def _add(self, table: dict[str, float], name: str, seconds: float) -> None:
        with self._lock:
            table[name] = table.get(name, 0.0) + max(seconds, 0.0)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a step of the critical path (seconds added to ``stages[name]``, also when it raises)."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self._add(self.stages, name, time.perf_counter() - t)

    @contextmanager
    def output(self, kind: str) -> Iterator[None]:
        """Time one kind of output (seconds added to ``outputs[kind]``, also when it raises)."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self._add(self.outputs, kind, time.perf_counter() - t)

    def carve(self, stage: str, parts: dict[str, float]) -> None:
        """Move ``parts`` (name → seconds measured inside ``stage``) out of ``stages[stage]`` into
        stages of their own: the sum of the stages stays the same."""
        with self._lock:
            for name, seconds in parts.items():
                seconds = min(max(seconds, 0.0), self.stages.get(stage, 0.0))
                self.stages[stage] = self.stages.get(stage, 0.0) - seconds
                self.stages[name] = self.stages.get(name, 0.0) + seconds

    def wall(self) -> float:
        """Seconds since this object was made (the scan's start)."""
        return time.perf_counter() - self._t0

    def record(self) -> dict[str, Any]:
        """The manifest's ``timings``: ``wall_s``, ``stages`` and ``outputs`` (seconds, 3 decimals)."""
        with self._lock:
            return {"wall_s": round(self.wall(), 3), "stages": {k: round(v, 3) for k, v in self.stages.items()},
                    "outputs": {k: round(v, 3) for k, v in self.outputs.items()}}

    @staticmethod
    def line_of(rec: dict[str, Any]) -> str:
        """One console line of a :meth:`record`: wall time, each stage and each output kind, in seconds."""
        stages = " · ".join(f"{k} {v:.1f}" for k, v in rec["stages"].items())
        outs = " · ".join(f"{k} {v:.1f}" for k, v in rec["outputs"].items())
        return f"timings (s): wall {rec['wall_s']:.1f} = {stages}" + (f"; outputs by kind (side by side): {outs}" if outs else "")

"""Progress of a scan's computes: tiles done / total, tasks done / total and scenes read.

The scan computes one Dask graph per tile (every scene read once per tile it covers). On a
distributed client each graph's task groups are watched on the scheduler (``TaskGroup.states``), so the bar counts real task
completions on whatever cluster runs the scan (LocalCluster or ``--scheduler``). Scenes read
are the completed reads of the quality band (one odc-stac task per scene, solar day and spatial
chunk, named after the band) over all such tasks, times the number of scenes.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import dask
from dask.base import collections_to_expr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipelines._cluster import trim_memory
from pipelines._io import IoStats

__all__ = ["compute_tiles"]

#: Task states that mean "ran" (result held, released after use, or failed).
_DONE = ("memory", "released", "forgotten", "erred")
#: Seconds between two looks at the scheduler.
_POLL_S = 0.5


def _group_name(key: Any) -> str:
    from distributed.utils import key_split_group

    return key_split_group(key)


def _group_states(dask_scheduler, names: list[str]) -> dict[str, dict[str, int]]:  # runs on the scheduler
    out = {}
    for n in names:
        tg = dask_scheduler.task_groups.get(n)
        if tg is not None:
            out[n] = {k: int(v) for k, v in tg.states.items() if v}
    return out


T = TypeVar("T")


def _groups(collections: Sequence[Any], read_prefix: str) -> tuple[dict[str, int], dict[str, int]]:
    """Task groups of a graph and their sizes, and the groups of the per-scene reads."""
    graph = collections_to_expr(list(collections)).__dask_graph__()
    groups: dict[str, int] = {}
    reads: dict[str, int] = {}
    for k in graph:
        g = _group_name(k)
        groups[g] = groups.get(g, 0) + 1
        if g.rsplit("-", 1)[0] == read_prefix:
            reads[g] = reads.get(g, 0) + 1
    return groups, reads


def compute_tiles(
    tiles: Sequence[T],
    graph: Callable[[T], list[Any]],
    *,
    scenes: Sequence[int],
    in_flight: int = 2,
    read_prefix: str = "mask",
    console: Console | None = None,
    show: bool | None = None,
    io: Callable[[], IoStats] | None = None,
) -> Iterator[tuple[T, tuple]]:
    """Compute each tile's graph (``graph(tile)``: a list of Dask collections) and yield
    ``(tile, computed collections)`` in order, with at most ``in_flight`` tiles submitted to the
    cluster at once: the next tiles compute while the caller writes the one it was given, and
    memory holds at most ``in_flight`` tiles' results. ``scenes[i]`` is the number of scenes
    tile ``i`` reads. With ``show`` (``None``: when the console is a terminal) a bar shows
    tiles done / total, tasks done / total of the tiles submitted so far, and scene reads
    (one per scene and tile); with ``io`` (the scan's I/O counters, :func:`pipelines._io.cluster_io_stats`)
    also the remote I/O rate (MB/s fetched since the first tile) and the requests made. Without a distributed client the tiles compute one by one with
    ``dask.compute``. Leaving the iterator early cancels the tiles still in flight.
    """
    console = console or Console(stderr=True)
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        client = None
    if client is None:
        for tile in tiles:
            yield tile, dask.compute(*graph(tile))
            trim_memory()
        return
    from distributed import wait as distributed_wait

    visible = show is not False and (show is True or console.is_terminal)
    todo = deque(enumerate(tiles))
    built: deque = deque()  # the next tile's graph, built while the cluster computes the tiles in flight
    pending: deque = deque()
    state = {"tasks": 0, "tasks_done": 0, "reads_done": 0.0}

    def build_next() -> None:
        if todo and not built:
            i, tile = todo.popleft()
            built.append((i, tile, graph(tile)))

    def submit() -> None:
        build_next()
        i, tile, cols = built.popleft()
        groups, reads = _groups(cols, read_prefix) if visible else ({}, {})
        state["tasks"] += sum(groups.values())
        pending.append((i, tile, client.compute(cols), groups, reads))

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    bar = Progress(*columns, console=console, transient=False, disable=not visible)
    try:
        with bar:
            t_tiles = bar.add_task("tiles", total=len(tiles))
            t_tasks = bar.add_task("tasks", total=0)
            t_scenes = bar.add_task("scene reads", total=int(sum(scenes)))
            t_io = bar.add_task("I/O", total=None, visible=io is not None)
            io_start = (time.monotonic(), io()) if (io is not None and visible) else None

            def show_io() -> None:
                if io_start is None:
                    return
                now = io()
                rate = (now.bytes_fetched - io_start[1].bytes_fetched) / max(time.monotonic() - io_start[0], 1e-3) / 1e6
                bar.update(t_io, description=f"I/O {rate:.1f} MB/s, requests", completed=now.requests - io_start[1].requests)
            while (todo or built) and len(pending) < in_flight:
                submit()
            while pending:
                # build the next tile's graph (0.4-0.9 s of Python per tile: odc-stac's per-scene
                # tasks) while the cluster computes, so that it is submitted the moment a tile
                # is done rather than leaving the cluster idle meanwhile (benchmarks/README.md §5c)
                build_next()
                i, tile, futures, groups, reads = pending[0]
                if not visible:
                    distributed_wait(futures)
                while not all(f.done() for f in futures):
                    if visible:
                        done, read = state["tasks_done"], state["reads_done"]
                        for _, _, _, g_all, g_reads in pending:
                            st = client.run_on_scheduler(_group_states, names=list(g_all))
                            done += sum(sum(v for s, v in x.items() if s in _DONE) for x in st.values())
                            n_reads = sum(g_reads.values())
                            if n_reads:
                                read += scenes[i] * sum(sum(v for s, v in st.get(g, {}).items() if s in _DONE) for g in g_reads) / n_reads
                        bar.update(t_tasks, total=state["tasks"], completed=min(done, state["tasks"]))
                        bar.update(t_scenes, completed=round(read))
                        show_io()
                    time.sleep(_POLL_S)
                results = tuple(client.gather(futures))
                pending.popleft()
                state["tasks_done"] += sum(groups.values())
                state["reads_done"] += scenes[i]
                bar.update(t_tiles, advance=1)
                bar.update(t_tasks, total=state["tasks"], completed=state["tasks_done"])
                bar.update(t_scenes, completed=round(state["reads_done"]))
                show_io()
                if todo or built:
                    submit()  # keep the cluster busy while the caller writes this tile
                yield tile, results
                # the caller has written the tile: drop it and give its freed memory back to
                # the OS before the next one arrives (with the workers as threads, freed
                # buffers otherwise stay in this process's heaps; benchmarks/README.md)
                del results, futures
                trim_memory()
    finally:
        for _, _, futures, _, _ in pending:
            client.cancel(futures)

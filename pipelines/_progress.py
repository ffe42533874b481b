"""Progress of a scan's one compute: tasks done / total and scenes read / scenes.

The scan computes one Dask graph (every scene read once). On a distributed client the graph's
task groups are watched on the scheduler (``TaskGroup.states``), so the bar counts real task
completions on whatever cluster runs the scan (LocalCluster or ``--scheduler``). Scenes read
are the completed reads of the quality band (one odc-stac task per scene, solar day and spatial
chunk, named after the band) over all such tasks, times the number of scenes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import dask
from dask.base import collections_to_expr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["compute_with_progress"]

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


def compute_with_progress(
    collections: Sequence[Any], *, n_scenes: int, read_prefix: str = "mask", console: Console | None = None, show: bool | None = None
) -> tuple:
    """``dask.compute(*collections)`` with a progress bar on ``console`` (stderr by default).

    ``show=None`` shows it when the console is a terminal (not in cron logs or pipes) and a
    distributed client is active; without a client, or with ``show=False``, this is plain
    ``dask.compute``. ``read_prefix`` names the per-scene read tasks (the quality band, or a
    reflectance band when a catalogue has no mask); ``n_scenes`` scales their count to scenes.
    """
    console = console or Console(stderr=True)
    try:
        from distributed import default_client

        client = default_client()
    except (ImportError, ValueError):
        client = None
    if client is None or show is False or (show is None and not console.is_terminal):
        return dask.compute(*collections)
    graph = collections_to_expr(list(collections)).__dask_graph__()
    groups: dict[str, int] = {}
    reads: dict[str, int] = {}
    for k in graph:
        g = _group_name(k)
        groups[g] = groups.get(g, 0) + 1
        if g.rsplit("-", 1)[0] == read_prefix:
            reads[g] = reads.get(g, 0) + 1
    n_tasks, n_reads = sum(groups.values()), sum(reads.values())
    futures = client.compute(list(collections))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        t_tasks = bar.add_task("tasks", total=n_tasks)
        t_scenes = bar.add_task("scenes read", total=n_scenes)
        while True:
            finished = all(f.done() for f in futures)
            states = client.run_on_scheduler(_group_states, names=list(groups))
            done = sum(sum(v for s, v in st.items() if s in _DONE) for st in states.values())
            read = sum(sum(v for s, v in states.get(g, {}).items() if s in _DONE) for g in reads)
            bar.update(t_tasks, completed=n_tasks if finished else min(done, n_tasks))
            bar.update(t_scenes, completed=n_scenes if finished else (round(n_scenes * read / n_reads) if n_reads else 0))
            if finished:
                break
            time.sleep(_POLL_S)
    return tuple(client.gather(futures))

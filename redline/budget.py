"""The memory budget of a scan: how large its processing tiles and compute chunks may be.

A scan holds, besides a fixed part (Python, the libraries, the LocalCluster: :data:`BASE_BYTES`;
the output phase, which streams the mosaics block by block: :data:`OUTPUT_BYTES`), the working
set of the tiles it computes. Within a tile every pixel's whole series is held (the detector
needs it), so that working set grows with the tile's pixels × its dates, never with the region
(docs/architecture.md §1.3). :func:`size_tiles` picks the largest tile edge and compute chunk
edge whose estimated peak (:func:`estimate_peak`) stays under the budget, from the number of
dates, the bands read and their bytes per value; the user's ``tiling.max_tile_px`` stays an
upper bound.

The cost model of the tile loop: the RSS before it (:data:`BASE_BYTES`), a constant
(:data:`FIXED_BYTES`: GDAL's block cache as the reads fill it, per-tile overheads), and per
pixel and date of the largest tile:

* :data:`TILE_BYTES` × the raw bytes of a pixel-date (``bands × bytes per value`` + the 1-byte
  quality mask): the whole tile's series flows in at once — odc-stac's reads of ``time_chunk``
  dates feed every compute chunk of the tile (:func:`pipelines.load_series`), and their DN,
  gathered copies and scaled float32 reflectance are in memory together;
* :data:`CHUNK_BYTES` × the pixels of the ``workers × threads`` compute chunks in progress (at
  most the tile): each chunk's masked reflectance, indices, the detector's stacked input
  (6 variables × dates, float32), its float64 scratch rows and the composite's;

both × ``tiling.in_flight`` (tiles computing at once). The per-pixel outputs (fields, composite,
assessment inputs: no dates) are small beside them. The scan's peak is the tile loop's or the
output phase's (:data:`OUTPUT_BYTES`), the larger.

Measured by ``benchmarks/budget_model.py`` (2026-12-07, ``small`` preset at 320 px, 73 dates, 6 uint16 bands + the SCL, two
threads; RSS of the tile loop over the RSS before it, 371 MiB, sampled every 0.05 s; load
average 9–11 from other jobs):

=============  ===============  ===========  ================  ================
tile (px)      chunk (px)       tile px      tile loop (MiB)   B per pixel-date
=============  ===============  ===========  ================  ================
320 (1 tile)   320 (1 chunk)    89 352       898               144
320 (1 tile)   160 (4 chunks)   89 352       483               78
320 (1 tile)   80 (16 chunks)   89 352       411               66
160 (4 tiles)  160 (1 chunk)    24 786       245               142
160 (4 tiles)  80 (4 chunks)    24 786       224               130
=============  ===============  ===========  ================  ================

Fitted on the multi-chunk runs (rows 2, 3, 5): 129 MB + 42.5 B per pixel-date of the tile +
31 B per pixel-date of the chunks in progress; it also gives row 4 (262 vs 257 MB). A tile
computed as a single chunk costs twice as much (rows 1 and 4) and was the slowest, so tiles are
always cut into chunks of half their edge (:func:`chunk_for`). Whole scans with those chunks
(benchmarks/memory.py ``--budget``, same day) put the tile loop at 78–90 B per pixel-date of
their largest tile (37 dates, 173 k px: 549 MiB over the RSS before the loop; 146 dates, tiles
of ≤ 83 k px: 905 MiB): the constants below are the fit's ×1.3 for the tile's share (56 B) and
48 B per pixel-date of the chunks in progress (24 B with chunks of half the tile's edge), 80 B
in all, which puts the model 12–16 % above those two scans: it errs on the safe side.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import psutil
from dask.utils import format_bytes, parse_bytes

from redline.errors import ConfigError

__all__ = ["BudgetError", "Sizing", "estimate_peak", "machine_memory_limit", "parse_memory_limit", "size_tiles", "chunk_for", "PeakSampler",
           "cluster_memory_limit",
           "BASE_BYTES", "FIXED_BYTES", "OUTPUT_BYTES", "DEFAULT_PER_SLOT", "MIN_TILE_PX", "MACHINE_SHARE"]

#: Share of the machine's available memory (psutil ``available``: free + reclaimable cache) a
#: scan may take when ``resources.memory_limit`` is not set; the rest is left to the system and
#: the other programs. Half, as Dask's LocalCluster splits the machine's memory among its workers
#: and starts spilling at 60 % of a worker's share (distributed.worker.memory.target).
MACHINE_SHARE = 0.5

#: The default budget's cap per compute slot (worker thread), bytes: without it a scan on a
#: large machine takes tiles of ``tiling.max_tile_px`` whatever their series, and its peak grows
#: with the area and the dates up to that edge (issue 25: 1.2 → 2.6 GiB at ×4 area, → 2.9 GiB at
#: ×4 dates). With two threads the default is 1 GiB, about the peak of a 600-px, 37-date scan in
#: one tile (921 MiB), so the peak stays there as the area and the dates grow; benchmarks/README.md §5b measures the peak it gives and the time per
#: pixel-date it costs. An explicit ``resources.memory_limit`` is not capped.
DEFAULT_PER_SLOT = 512 * 2**20

#: RSS of a scan's process before its tile loop (interpreter, libraries, the LocalCluster of
#: threads), bytes: 371 MiB measured (module docstring), rounded up.
BASE_BYTES = 400 * 2**20

#: The tile loop's constant, bytes: the fit's 129 MB (module docstring): GDAL's block cache as
#: the reads fill it (``GDAL_CACHEMAX`` 256 MB, :data:`pipelines._cluster.GDAL_ENV`), per-tile
#: overheads.
FIXED_BYTES = 128 * 2**20

#: The output phase's peak (chips, assessment, map and report, streaming the mosaics block by
#: block; it does not grow with the tiles), bytes: 550–672 MiB at ×1 to ×16 area
#: (benchmarks/README.md §5), rounded up.
OUTPUT_BYTES = 700 * 2**20

#: Bytes per pixel-date of a tile per raw byte of a pixel-date (42.5 B / 13 B × 1.3).
TILE_BYTES = 4.3

#: Bytes per pixel-date of the compute chunks in progress (module docstring).
CHUNK_BYTES = 48.0

#: The smallest tile and chunk edge (px) a budget must fit: below this, a tile's margin (mask
#: dilation) and per-task overheads dominate.
MIN_TILE_PX = 64
MIN_CHUNK_PX = 32

#: Largest compute chunk edge (px), the load's default (:func:`pipelines.load_series`).
MAX_CHUNK_PX = 512


class BudgetError(ConfigError):
    """The memory limit cannot be parsed or cannot hold even one minimal tile."""


def parse_memory_limit(value: str | int | float, *, key: str = "resources.memory_limit") -> int:
    """Bytes of a memory limit: an int, or a string such as ``"1GB"``, ``"1.5GiB"``, ``"800MB"``,
    ``"2e9"`` (:func:`dask.utils.parse_bytes`: kB/MB/GB are powers of 10, KiB/MiB/GiB of 2).

    Raises
    ------
    BudgetError
        Not a size, or not positive (one line naming ``key`` and the value).
    """
    try:
        if isinstance(value, bool) or not any(ch.isdigit() for ch in str(value)):  # parse_bytes gives 1 B for "" and 1 GB for "GB"
            raise ValueError(value)
        n = int(value) if isinstance(value, (int, float)) else int(parse_bytes(str(value)))
    except (ValueError, TypeError):
        raise BudgetError(f"{key} = {value!r} is not a memory size; give e.g. 1GB, 1.5GiB, 800MB or 2e9 (bytes)") from None
    if n <= 0:
        raise BudgetError(f"{key} = {value!r} is not a positive memory size; give e.g. 1GB, 1.5GiB, 800MB or 2e9 (bytes)")
    return n


def machine_memory_limit(slots: int = 1) -> int:
    """The default budget, bytes: :data:`MACHINE_SHARE` of this machine's available memory, at
    most :data:`DEFAULT_PER_SLOT` per compute slot (``workers × threads_per_worker``)."""
    return int(min(psutil.virtual_memory().available * MACHINE_SHARE, DEFAULT_PER_SLOT * max(slots, 1)))


@dataclass(frozen=True)
class Sizing:
    """A scan's budget and what it chose: ``budget`` (bytes) and where it came from (``source``:
    ``config`` (the config or ``--memory-limit``), ``machine``, ``cluster``); the tile edge
    (px: a tile's computed window holds at most ``tile_px``² pixels) and compute chunk edge (px);
    the inputs of the cost model; ``estimate``: the peak it predicts (bytes); once the tiles are
    planned, the cells' edge and the largest tile's pixels."""

    budget: int
    source: str
    tile_px: int
    chunk_px: int
    n_dates: int
    n_bands: int
    bytes_per_value: int
    slots: int
    in_flight: int
    estimate: int
    cell_px: int = 0  # the grid cells' edge the tiles were planned on (redline.run.plan: ≤ tile_px)
    largest_tile_px: int = 0  # pixels of the largest tile's computed window (≤ tile_px²)

    def record(self) -> dict[str, Any]:
        """The manifest's ``resources`` record (without the measured peak)."""
        return {**asdict(self), "budget_text": format_bytes(self.budget), "base_bytes": BASE_BYTES, "fixed_bytes": FIXED_BYTES, "output_bytes": OUTPUT_BYTES,
                "model": {"tile_bytes_per_value": TILE_BYTES, "chunk_bytes_per_pixel_date": CHUNK_BYTES}}


def estimate_peak(tile_px: int, chunk_px: int, *, n_dates: int, n_bands: int, bytes_per_value: int, slots: int, in_flight: int = 1,
                  base: int = BASE_BYTES) -> int:
    """The model's peak RSS (bytes) of a scan with square tiles of ``tile_px`` and compute chunks
    of ``chunk_px`` (both px), ``n_dates`` dates of ``n_bands`` bands of ``bytes_per_value`` bytes
    each (+ a 1-byte mask), ``slots`` chunks computing at once and ``in_flight`` tiles: the tile
    loop's (``base`` + the tiles) or the output phase's (:data:`OUTPUT_BYTES`), the larger."""
    tile_area = tile_px * tile_px
    raw = TILE_BYTES * (n_bands * bytes_per_value + 1) * tile_area
    chunks = CHUNK_BYTES * min(slots * chunk_px * chunk_px, tile_area)
    return int(max(OUTPUT_BYTES, base + FIXED_BYTES + in_flight * n_dates * (raw + chunks)))


def chunk_for(tile_px: int) -> int:
    """The compute chunk edge (px) of a tile of ``tile_px``: half its edge (four chunks or more,
    so that two threads share every tile; a tile computed as one chunk cost the most memory
    per pixel-date and took the longest: module docstring), a multiple of 16 between
    :data:`MIN_CHUNK_PX` and :data:`MAX_CHUNK_PX`."""
    return max(MIN_CHUNK_PX, min(MAX_CHUNK_PX, tile_px // 2 // 16 * 16))


def size_tiles(budget: int, *, n_dates: int, n_bands: int, bytes_per_value: int = 2, max_tile_px: int = 1024, slots: int = 2,
               in_flight: int = 1, source: str = "config", base: int = BASE_BYTES) -> Sizing:
    """The largest tile edge (≤ ``max_tile_px``, a multiple of 32 but for ``max_tile_px`` itself)
    whose :func:`estimate_peak`, with chunks of :func:`chunk_for` that edge, fits ``budget`` bytes.
    Smaller with more dates, bands or bytes, larger with a larger budget.

    Raises
    ------
    BudgetError
        ``budget`` cannot hold one tile of :data:`MIN_TILE_PX` (or ``max_tile_px`` if smaller).
    """
    kw = dict(n_dates=max(n_dates, 1), n_bands=n_bands, bytes_per_value=bytes_per_value, slots=slots, in_flight=in_flight, base=base)
    floor_tile = min(MIN_TILE_PX, max_tile_px)
    need = estimate_peak(floor_tile, chunk_for(floor_tile), **kw)
    if need > budget:
        raise BudgetError(
            f"resources.memory_limit {format_bytes(budget)} cannot hold one {floor_tile}-px tile of {n_dates} dates × {n_bands} bands "
            f"(≈ {format_bytes(need)} with the scan's fixed {format_bytes(base + FIXED_BYTES)}, redline/budget.py); raise --memory-limit / "
            f"resources.memory_limit to at least {format_bytes(need)} or scan fewer dates")
    tile = floor_tile
    for t in (max_tile_px, *range(max_tile_px // 32 * 32, floor_tile - 1, -32)):
        if estimate_peak(t, chunk_for(t), **kw) <= budget:
            tile = t
            break
    chunk = min(chunk_for(tile), tile)
    return Sizing(budget=int(budget), source=source, tile_px=tile, chunk_px=chunk, n_dates=n_dates, n_bands=n_bands,
                  bytes_per_value=bytes_per_value, slots=slots, in_flight=in_flight, estimate=estimate_peak(tile, chunk, **kw))


class PeakSampler:
    """Peak resident memory (bytes) of this process and all its descendants (Dask worker
    processes, their nannies), sampled every ``interval`` seconds on a daemon thread while
    used as a context manager; also this process's own peak by the kernel's count
    (``resource.getrusage``, ``ru_maxrss``) which no sampling can miss."""

    def __init__(self, interval: float = 0.1, refresh: float = 1.0) -> None:
        import threading

        self.interval = interval
        self.refresh = refresh
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="redline-peak-rss", daemon=True)
        self._proc = psutil.Process(os.getpid())
        self._children: list[psutil.Process] = []
        self._found_at = -float("inf")

    def sample(self) -> int:
        """The process tree's RSS now (bytes); the peak updated. The descendants are looked up
        again every ``refresh`` seconds only: psutil finds them by reading every process's
        ``/proc`` entry (~5 ms with 90 processes, in Python), which every 0.1 s took ~5 % of a
        core and of the GIL the scan's worker threads share (benchmarks/README.md §5c, "Where the GIL goes"); each
        one's RSS is read every ``interval`` (~14 µs)."""
        now = time.monotonic()
        if now - self._found_at >= self.refresh:
            try:
                self._children = self._proc.children(recursive=True)
            except psutil.Error:
                pass
            self._found_at = now
        total = 0
        for p in [self._proc, *self._children]:
            try:
                total += p.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        self.peak = max(self.peak, total)
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> PeakSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def record(self) -> dict[str, int | float]:
        """``peak_rss_bytes``: the larger of the process tree's sampled peak (while sampling) and
        this process's own peak by the kernel (``ru_maxrss``, its whole life: the scan's when the
        CLI runs it), bytes; ``peak_rss_sampled_bytes`` and ``peak_rss_self_bytes`` apart."""
        import resource
        import sys

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        own = int(maxrss if sys.platform == "darwin" else maxrss * 1024)  # ru_maxrss: KiB on Linux (getrusage(2)), bytes on macOS
        return {"peak_rss_bytes": max(int(self.peak), own), "peak_rss_sampled_bytes": int(self.peak), "peak_rss_self_bytes": own,
                "peak_rss_interval_s": self.interval}


def cluster_memory_limit(client: Any) -> int | None:
    """The memory of a Dask cluster's workers, bytes: the smallest worker ``memory_limit`` ×
    the number of workers (a tile's chunks spread over them); None when a worker has no limit."""
    workers = client.scheduler_info().get("workers", {}).values()
    limits = [w.get("memory_limit") or 0 for w in workers]
    if not limits or min(limits) <= 0:
        return None
    return int(min(limits) * len(limits))

"""Provenance: the scan manifest (docs/architecture.md §4.5) and its verification.

``manifest.json`` records what produced the outputs — redline version and git commit, the
config as given and resolved with its sha256, the STAC API and exact search parameters, every
item used with its asset hrefs and the scaling applied, library versions, times — and the
sha256 and size of every output file, so that ``redline verify OUT`` can prove that nothing
was changed afterwards.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from redline.outputs import MANIFEST_JSON

__all__ = ["sha256_file", "library_versions", "git_commit", "run_record", "item_records", "write_manifest", "record_rerender", "verify_outputs",
           "MANIFEST"]

MANIFEST = MANIFEST_JSON
_LIBS = ("redline", "rasterio", "numpy", "xarray", "dask", "distributed", "odc-stac", "odc-geo", "pystac",
         "pystac-client", "spyndex", "exactextract", "geopandas", "pyogrio", "shapely", "pyproj", "folium", "rustac", "matplotlib", "pillow")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the results, plus GDAL, Python and the figures' fonts
    (``figure_font``: the Latin family and the CJK font file, or why there is none)."""
    out = {}
    for name in _LIBS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    import rasterio

    out["GDAL"] = rasterio.__gdal_version__
    out["python"] = platform.python_version()
    from maps import figure_font_name  # the figures' CJK font, found by file (maps._fonts)

    out["figure_font"] = figure_font_name()
    return out


def git_commit() -> str | None:
    """The git commit of the redline source tree, if it runs from a checkout."""
    here = Path(__file__).resolve().parent
    try:
        res = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
    return res.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def run_record(*, started: dt.datetime, config_text: str | None, cfg: Any, search: Any, grid: Any) -> dict[str, Any]:
    """The manifest's head, the same for a scan and an assessment: redline version and git
    commit, start and finish times (UTC), the config as given (with its sha256) and resolved,
    the STAC API and search parameters (``search``: a :class:`pipelines.SearchResult`), and the
    analysis grid (CRS, affine transform, shape)."""
    return {
        "redline_version": library_versions()["redline"],
        "git_commit": git_commit(),
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "config": {"as_given": config_text, "sha256": hashlib.sha256((config_text or "").encode()).hexdigest(), "resolved": json.loads(cfg.model_dump_json())},
        "stac": {"url": search.url, "search": search.parameters, "client_side_cloud_filter": search.client_side_cloud_filter, "notes": search.notes},
        "grid": {"crs": str(grid.crs), "transform": list(grid.transform)[:6], "shape": list(grid.shape)},
    }


def item_records(items: list[Any], scalings: list[Any], *, skip: set[str] = frozenset()) -> list[dict[str, Any]]:
    """One manifest record per STAC item used (those in ``skip`` left out): id, collection,
    datetime, asset hrefs, processing baseline and, per band, the scaling applied
    (``refl = DN · scale + offset``, no-data DN, the asset, where the scaling came from and why;
    ``scalings``: :class:`pipelines.ItemScaling` records)."""
    return [
        {"id": it.id, "collection": it.collection_id, "datetime": it.datetime.isoformat() if it.datetime else None,
         "assets": {k: a.href for k, a in it.assets.items()},
         "processing_baseline": it.properties.get("s2:processing_baseline") or it.properties.get("processing:version"),
         "scaling": {s.band: {"scale": s.scale, "offset": s.offset, "nodata": s.nodata, "asset": s.asset, "source": s.source, "reason": s.reason}
                     for s in scalings if s.item_id == it.id}}
        for it in items if it.id not in skip
    ]


def _outputs(out_dir: Path) -> dict[str, dict[str, Any]]:
    files = {}
    for p in sorted(out_dir.rglob("*")):
        if p.is_file() and p.name != MANIFEST and not p.name.endswith(".lock") and "lib" not in p.relative_to(out_dir).parts[:1]:
            files[p.relative_to(out_dir).as_posix()] = {"sha256": sha256_file(p), "size": p.stat().st_size}
    return files


def write_manifest(out_dir: Path, record: dict[str, Any], *, exclude: tuple[str, ...] = ()) -> Path:
    """Write ``OUT/manifest.json``: ``record`` plus checksums of every output file under OUT.

    The register is not checksummed when it lives inside OUT (it changes with every review;
    its history is hash-chained instead); pass its relative path in ``exclude``.
    """
    outputs = {k: v for k, v in _outputs(out_dir).items() if k not in exclude}
    manifest = {**record, "outputs": outputs}
    path = out_dir / MANIFEST
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    return path


def record_rerender(out_dir: Path, files: list[Path], reason: str) -> None:
    """Record in the manifest that ``files`` were rendered again (e.g. the map after a review):
    their new checksums replace the old ones and a ``rerenders`` entry says when and why."""
    import datetime as dt

    path = out_dir / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8"))
    rels = []
    for f in files:
        if f.exists():
            rel = f.relative_to(out_dir).as_posix()
            manifest.setdefault("outputs", {})[rel] = {"sha256": sha256_file(f), "size": f.stat().st_size}
            rels.append(rel)
    manifest.setdefault("rerenders", []).append(
        {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "files": rels, "reason": reason, "redline_version": library_versions()["redline"]}
    )
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str), encoding="utf-8")


def verify_outputs(out_dir: Path) -> list[str]:
    """Recompute every checksum of the manifest; one message per changed, missing or extra file."""
    manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    recorded = manifest.get("outputs", {})
    problems = []
    for rel, meta in recorded.items():
        p = out_dir / rel
        if not p.exists():
            problems.append(f"{rel}: missing (recorded in the manifest)")
        elif sha256_file(p) != meta["sha256"]:
            problems.append(f"{rel}: changed since the scan (sha256 differs from the manifest)")
    excluded = set(manifest.get("not_checksummed", []))
    for rel in _outputs(out_dir):
        if rel not in recorded and rel not in excluded:
            problems.append(f"{rel}: not in the manifest (added after the scan)")
    return problems

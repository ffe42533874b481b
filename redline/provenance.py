"""Provenance: the scan manifest (docs/architecture.md §4.5) and its verification.

``manifest.json`` records what produced the outputs — redline version and git commit, the
config as given and resolved with its sha256, the STAC API and exact search parameters, every
item used with its asset hrefs and the scaling applied, library versions, times — the sha256
and size of every output file, and the register's chain head when the scan wrote it. It is
signed (``signature``: ed25519 over its canonical JSON by the installation's key, one of the
register's signers), so that ``redline verify OUT`` can prove that nothing was changed
afterwards, the manifest included. May import :mod:`redline.outputs` and
:mod:`redline.register.keys`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from redline.outputs import MANIFEST_JSON, PHOTOS_SUFFIX, REGISTER_GPKG, is_register_url, register_location
from redline.register.keys import SigningKey, verify_signature

__all__ = ["sha256_file", "library_versions", "git_commit", "run_record", "item_records", "write_manifest", "record_rerender", "record_outputs",
           "output_files", "verify_outputs", "read_manifest", "manifest_signature", "manifest_register", "find_register", "register_record", "verify_folder",
           "redact", "MANIFEST"]

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


_URL_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@\s\"']+):[^@\s\"']*@")


def redact(text: str | None) -> str | None:
    """``text`` with the password of every ``postgresql://user:password@`` URL replaced by
    ``***`` (the sha256 of the config is of the text as given)."""
    return None if text is None else _URL_PASSWORD.sub(r"\1:***@", text)


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
        "config": {"as_given": redact(config_text), "sha256": hashlib.sha256((config_text or "").encode()).hexdigest(),
                   "resolved": json.loads(redact(cfg.model_dump_json()))},
        "stac": {"url": search.url, "search": search.parameters, "client_side_cloud_filter": search.client_side_cloud_filter, "notes": search.notes},
        "grid": {"crs": str(grid.crs), "transform": list(grid.transform)[:6], "shape": list(grid.shape)},
    }


def item_records(items: list[Any], scalings: list[Any], *, skip: set[str] = frozenset()) -> list[dict[str, Any]]:
    """One manifest record per STAC item used (those in ``skip`` left out): id, collection,
    platform (STAC common metadata, e.g. ``sentinel-2a``; None when the item has none), datetime, asset hrefs, processing baseline and, per band, the scaling applied
    (``refl = DN · scale + offset``, no-data DN, the asset, where the scaling came from and why;
    ``scalings``: :class:`pipelines.ItemScaling` records)."""
    return [
        {"id": it.id, "collection": it.collection_id, "platform": it.properties.get("platform"),
         "datetime": it.datetime.isoformat() if it.datetime else None,
         "assets": {k: a.href for k, a in it.assets.items()},
         "processing_baseline": it.properties.get("s2:processing_baseline") or it.properties.get("processing:version"),
         "scaling": {s.band: {"scale": s.scale, "offset": s.offset, "nodata": s.nodata, "asset": s.asset, "source": s.source, "reason": s.reason}
                     for s in scalings if s.item_id == it.id}}
        for it in items if it.id not in skip
    ]


#: Files next to a register that are not outputs: SQLite's write-ahead log and shared memory, the
#: scans' lock file, and the copy kept when an older register is upgraded.
_SIDECARS = re.compile(r".*(-wal|-shm|-journal|\.lock|\.schema\d+-backup\.gpkg)$")


def _photo_folder(rel: Path, out_dir: Path) -> bool:
    """True for a file in a register's photo folder (``<stem>-photos`` next to ``<stem>.gpkg``):
    field photos come after the scan, and the register's signed history checks them."""
    return any(d.name.endswith(PHOTOS_SUFFIX) and (out_dir / d.parent / f"{d.name[: -len(PHOTOS_SUFFIX)]}.gpkg").is_file() for d in rel.parents[:-1])


def output_files(out_dir: Path) -> list[Path]:
    """The output files under ``out_dir`` that the manifest checksums, sorted: every file but the
    manifest itself, a register's SQLite sidecars and lock (:data:`_SIDECARS`), the map's copies
    of third-party web libraries (``lib/``) and a register's field photos."""
    return [p for p in sorted(out_dir.rglob("*"))
            if (p.is_file() and p.name != MANIFEST and not _SIDECARS.match(p.name) and "lib" not in p.relative_to(out_dir).parts[:1]
                and not _photo_folder(p.relative_to(out_dir), out_dir))]


def _checksum(p: Path) -> dict[str, Any]:
    return {"sha256": sha256_file(p), "size": p.stat().st_size}


def _outputs(out_dir: Path) -> dict[str, dict[str, Any]]:
    return {p.relative_to(out_dir).as_posix(): _checksum(p) for p in output_files(out_dir)}


def _canonical(manifest: dict[str, Any]) -> str:
    """The signed text of a manifest: its JSON without ``signature``, keys sorted, as read back."""
    body = {k: v for k, v in json.loads(json.dumps(manifest, ensure_ascii=False, default=str)).items() if k != "signature"}
    return json.dumps(body, sort_keys=True, ensure_ascii=False)


def _write(path: Path, manifest: dict[str, Any], key: SigningKey) -> None:
    manifest = {k: v for k, v in manifest.items() if k != "signature"}
    manifest["signature"] = {"key_id": key.key_id, "public_key": key.public_hex, "value": key.sign(_canonical(manifest))}
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str), encoding="utf-8")


def write_manifest(out_dir: Path, record: dict[str, Any], *, key: SigningKey, exclude: tuple[str, ...] = ()) -> Path:
    """Write ``OUT/manifest.json``: ``record`` plus checksums of every output file under OUT,
    signed with ``key``.

    The register is not checksummed when it lives inside OUT (it changes with every review;
    its history is hash-chained and signed instead, and ``record`` names its head); pass its
    relative path in ``exclude``.
    """
    outputs = {k: v for k, v in _outputs(out_dir).items() if k not in exclude}
    path = out_dir / MANIFEST
    _write(path, {**record, "outputs": outputs}, key)
    return path


def record_rerender(out_dir: Path, files: list[Path], reason: str, *, key: SigningKey, head: dict[str, Any] | None = None) -> None:
    """Record in the manifest that ``files`` were rendered again (e.g. the map after a review):
    their new checksums replace the old ones, a ``rerenders`` entry says when, why and at which
    register head, and the manifest is signed again with ``key``."""
    manifest = read_manifest(out_dir)
    rels = _update_outputs(manifest, out_dir, files)
    manifest.setdefault("rerenders", []).append(
        {"time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "files": rels, "reason": reason,
         "redline_version": library_versions()["redline"], "register_head": head}
    )
    _write(out_dir / MANIFEST, manifest, key)


def record_outputs(out_dir: Path, files: list[Path], *, key: SigningKey, dropped: tuple[str, ...] = ()) -> None:
    """Add ``files`` (written after the manifest, e.g. the STAC catalogue made from its checksums)
    to the manifest's checksums, drop the entries ``dropped`` (paths relative to OUT, files
    removed since), and sign the manifest again with ``key``."""
    manifest = read_manifest(out_dir)
    recorded = manifest.setdefault("outputs", {})
    for rel in dropped:
        recorded.pop(rel, None)
    _update_outputs(manifest, out_dir, files)
    _write(out_dir / MANIFEST, manifest, key)


def record_timings(out_dir: Path, timings: dict[str, Any], *, key: SigningKey) -> dict[str, Any]:
    """Put the scan's per-stage wall times (``timings``: ``wall_s``, ``stages``, ``outputs``, in
    seconds; :meth:`redline.run.timings.Timings.record`) into the manifest as ``timings`` and sign
    it again with ``key``: last of all, so that the manifest and the catalogue are timed too.
    Returns ``timings``."""
    manifest = read_manifest(out_dir)
    manifest["timings"] = timings
    _write(out_dir / MANIFEST, manifest, key)
    return timings


def _update_outputs(manifest: dict[str, Any], out_dir: Path, files: list[Path]) -> list[str]:
    """Put the checksum and size of each of ``files`` that exists into ``manifest['outputs']``;
    their paths relative to OUT."""
    rels = []
    for f in files:
        if f.exists():
            rel = f.relative_to(out_dir).as_posix()
            manifest.setdefault("outputs", {})[rel] = _checksum(f)
            rels.append(rel)
    return rels


def read_manifest(out_dir: Path) -> dict[str, Any]:
    """``OUT/manifest.json`` as a dict.

    Raises
    ------
    RedlineInputError
        No manifest there, or not a JSON object: one line naming the file.
    """
    from redline.errors import RedlineInputError

    path = out_dir / MANIFEST
    if not path.is_file():
        raise RedlineInputError(f"{out_dir}: no {MANIFEST}; give the output folder of a finished scan")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RedlineInputError(f"{path}: not a readable manifest ({exc}); restore it from a backup or run the scan again") from None
    if not isinstance(manifest, dict):
        raise RedlineInputError(f"{path}: not a manifest (a JSON object was expected); restore it from a backup or run the scan again")
    problem = _shape_problem(manifest)
    if problem:
        raise RedlineInputError(f"{path}: {problem}; restore it from a backup or run the scan again")
    return manifest


def _shape_problem(manifest: dict[str, Any]) -> str | None:
    """What makes a manifest unreadable by :func:`verify_folder` and :func:`record_rerender`
    (None: nothing): ``outputs`` a mapping of files to ``{"sha256", "size"}``, ``register`` a
    mapping or null, ``rerenders`` a list."""
    outputs = manifest.get("outputs", {})
    if not isinstance(outputs, dict):
        return f"'outputs' is a {type(outputs).__name__}, not a mapping of files to checksums"
    for rel, meta in outputs.items():
        if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
            return f"'outputs' entry {rel!r} has no sha256"
    if not isinstance(manifest.get("register") or {}, dict):
        return f"'register' is a {type(manifest['register']).__name__}, not a record of the register (path, head)"
    if not isinstance(manifest.get("rerenders", []), list):
        return "'rerenders' is not a list"
    return None


def manifest_signature(manifest: dict[str, Any]) -> tuple[str | None, str | None]:
    """(key id, problem) of a manifest's signature: the key that signed it, and None when the
    signature is valid (the caller checks the key is one it trusts)."""
    sig = manifest.get("signature")
    if not isinstance(sig, dict) or not {"key_id", "public_key", "value"} <= set(sig):
        return None, f"{MANIFEST}: not signed (written before signed manifests, or its signature was removed); run the scan again"
    if not verify_signature(str(sig["public_key"]), _canonical(manifest), str(sig["value"])):
        return str(sig["key_id"]), f"{MANIFEST}: its signature does not match its content (edited after the scan)"
    return str(sig["key_id"]), None


def verify_outputs(out_dir: Path) -> list[str]:
    """Recompute every checksum of the manifest; one message per changed, missing or extra file."""
    manifest = read_manifest(out_dir)
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


def manifest_register(out_dir: Path, manifest: dict[str, Any]) -> str | None:
    """The register a scan's manifest names, resolved for the folder it is in now: a path
    inside the scan's output folder (stored relative) is taken in ``out_dir``, so a copied or
    moved folder is checked against its own register; a URL or an outside path as stored."""
    rec = manifest.get("register") or {}
    loc = rec.get("path") if isinstance(rec, dict) else None
    if not loc:
        return None
    loc = str(loc)
    if is_register_url(loc):
        return loc
    p = Path(loc)
    if not p.is_absolute():
        return str(out_dir / p)
    if rec.get("inside_out") is None and (out_dir / p.name).exists():  # a manifest written before relative paths
        return str(out_dir / p.name)
    return str(p)


def verify_folder(out_dir: Path, *, register: str | None = None, heads: tuple[str, ...] = (),
                  photos: Path | None = None) -> tuple[list[str], list[str]]:
    """``redline verify OUT``: (problems, what was checked).

    Checks the manifest's signature (by a key the register lists), every output's checksum, the
    register the manifest names — ``register`` instead when given, else OUT's own register when
    it lay inside the scan's folder — with :meth:`redline.register.Register.verify`, that the
    chain head recorded at scan time and at each re-render, and each of ``heads``, is still in
    its chain, and that every field photo its history names is intact in ``photos`` (default:
    the GeoPackage register's ``<stem>-photos`` folder). A register that is named but missing is
    a problem, never a skip."""
    from redline.errors import RedlineInputError
    from redline.register import Register

    manifest = read_manifest(out_dir)
    if register is None and "register" not in manifest and manifest.get("kind") != "assessment":
        raise RedlineInputError(f"{out_dir / MANIFEST}: no 'register' record, which a scan's manifest always has (removed, or the file is damaged); "
                                "restore it from a backup, or name the register to check with --register")
    problems = verify_outputs(out_dir)
    n_out = len(manifest.get("outputs", {}))
    checked = [f"outputs: {n_out - sum(1 for p in problems if not p.endswith('(added after the scan)'))}/{n_out} match the manifest"]
    signer, sig_problem = manifest_signature(manifest)
    location = register or manifest_register(out_dir, manifest)
    recorded = [h for h in [((manifest.get("register") or {}).get("head") or {}).get("row_hash")] +
                [((r.get("register_head") or {}).get("row_hash")) for r in manifest.get("rerenders", []) if isinstance(r, dict)] if h]
    if location is None:  # an assessment without a register
        v = None
    elif not is_register_url(location) and not Path(location).exists():
        problems.append(f"register {location}: missing (named by {MANIFEST}); restore it or give --register")
        v = None
    elif not is_register_url(location) and Path(location).is_file() and Path(location).stat().st_size == 0:
        raise RedlineInputError(f"register {location}: an empty file (0 bytes), not a register; restore it from a backup or give --register")
    else:
        v = Register(location).verify(heads=tuple(dict.fromkeys([*recorded, *heads])), photos=photos)
        problems += v.problems
        head = v.head or {}
        checked.append(f"register {location}: {v.rows} history entries, {v.signed} signatures valid"
                       + (f", {v.unsigned} written before signing (chain only)" if v.unsigned else "")
                       + f"; {v.sealed}/{v.alerts} alerts match their seals")
        checked.append(f"photos: {v.photos_intact}/{v.photos} intact")
        checked.append(f"chain head: seq {head.get('seq', 0)} {head.get('row_hash') or '–'}")
    if sig_problem:
        problems.append(sig_problem)
    elif v is not None and signer not in v.keys:
        problems.append(f"{MANIFEST}: signed by key {signer}, which is not among the register's signers")
    else:
        checked.append(f"{MANIFEST}: signature valid (key {signer}" + (", a signer of the register)" if v is not None else "; no register to check the key against)"))
    return problems, checked


def find_register(out: Path | str | None, configured: Path | str | None = None, *, cwd: Path | None = None) -> Path | str:
    """The register a command reads or reviews (``redline alerts``, ``users``, ``keys trust``,
    ``serve``, ``map``): ``configured`` (``--register``) when given; else the one the manifest of
    the scan folder names (``--out``, else the working folder ``cwd`` when it is a scan's output
    folder, holding a manifest or a register, else ``out``), so a register the config put
    elsewhere is found too; else that folder's ``register.gpkg``. A manifest that cannot be
    read names nothing here (``redline verify`` says what is wrong with it)."""
    from redline.errors import RedlineInputError

    if configured is not None:
        return register_location(configured)
    here = Path.cwd() if cwd is None else cwd
    in_scan_folder = (here / MANIFEST).is_file() or (here / REGISTER_GPKG).is_file()
    folder = Path(out) if out is not None else (here if in_scan_folder else Path("out"))
    if (folder / MANIFEST).is_file():
        try:
            named = manifest_register(folder, read_manifest(folder))
        except RedlineInputError:
            named = None
        if named is not None:
            return register_location(named)
    return folder / REGISTER_GPKG


def register_record(out_dir: Path, location: str | Path, **extra: Any) -> dict[str, Any]:
    """The manifest's ``register`` record: ``path`` relative to OUT when the register lies in it
    (so the folder is checked against its own register wherever it is copied), else absolute,
    or the URL without its password; ``inside_out``; and ``extra`` (e.g. the chain ``head``)."""
    if is_register_url(location):
        from redline.register.postgis import public_url

        return {"path": public_url(str(location)), "inside_out": False, **extra}
    p = Path(location).resolve()
    inside = p.is_relative_to(out_dir.resolve())
    return {"path": p.relative_to(out_dir.resolve()).as_posix() if inside else str(p), "inside_out": inside, **extra}

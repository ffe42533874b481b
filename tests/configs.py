"""A generated scene set's ``scan.yml`` as the command line reads it (``redline scan|assess
FILE``): its STAC URL set, its zones' and counties' paths absolute, other top-level sections
replaced. Shared by the tests that run the real command line on a scan config."""

from __future__ import annotations

from pathlib import Path

import yaml


def cli_config(scenes, stac_url: str, folder: Path, name: str = "scan.yml", **sections) -> Path:
    """``scenes``' config with ``stac.url`` = ``stac_url`` and ``sections`` (e.g. ``register=``,
    ``tiling={…}``), written as ``folder/name``; returns its path."""
    src = Path(scenes.config)
    raw = {**yaml.safe_load(src.read_text(encoding="utf-8")), **sections}
    raw["stac"]["url"] = stac_url
    for key in ("zones", "admin_units"):
        raw[key]["path"] = str((src.parent / raw[key]["path"]).resolve())
    path = folder / name
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path

"""Leaflet and jQuery from installed packages (PyPI xstatic-leaflet, xstatic-jquery), copied
next to the page, so that maps work with no network: never a CDN."""

from __future__ import annotations

import shutil
from pathlib import Path

import xstatic.pkg.jquery as _jquery
import xstatic.pkg.leaflet as _leaflet

LIB = "lib"


def copy_assets(out_dir: Path) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Copy the page's JS/CSS into ``out_dir/lib`` and return folium-style (name, relative url)
    lists for ``default_js`` and ``default_css``."""
    lib = out_dir / LIB
    (lib / "leaflet").mkdir(parents=True, exist_ok=True)
    leaflet = Path(_leaflet.BASE_DIR)
    for name in ("leaflet.js", "leaflet.css"):
        shutil.copy2(leaflet / name, lib / "leaflet" / name)
    shutil.copytree(leaflet / "images", lib / "leaflet" / "images", dirs_exist_ok=True)
    shutil.copy2(Path(_jquery.BASE_DIR) / "jquery.min.js", lib / "jquery.min.js")
    js = [("leaflet", f"{LIB}/leaflet/leaflet.js"), ("jquery", f"{LIB}/jquery.min.js")]
    css = [("leaflet_css", f"{LIB}/leaflet/leaflet.css")]
    return js, css

"""The page's JavaScript and CSS from installed PyPI packages, copied next to the page so the map
works with no network: never a CDN.

Packages: ``xstatic-leaflet`` (1.9.3, the version folium 0.20 pins), ``xstatic-jquery`` (folium's
popups use ``$``), ``xstatic-bootstrap`` (4.x) and ``xstatic-font-awesome`` (6.x; CSS plus the
woff2/ttf web fonts its CSS refers to as ``../webfonts/``). Leaflet.awesome-markers ships in no
package, so the map draws no ``folium.Icon`` markers and never links it.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import xstatic.pkg.bootstrap as _bootstrap
import xstatic.pkg.font_awesome as _font_awesome
import xstatic.pkg.jquery as _jquery
import xstatic.pkg.leaflet as _leaflet

log = logging.getLogger(__name__)

LIB = "lib"

#: (source package, file inside its data dir, destination under ``lib/``)
_FILES: tuple[tuple[ModuleType, str, str], ...] = (
    (_leaflet, "leaflet.js", "leaflet/leaflet.js"),
    (_leaflet, "leaflet.css", "leaflet/leaflet.css"),
    (_jquery, "jquery.min.js", "jquery/jquery.min.js"),
    (_bootstrap, "js/bootstrap.bundle.min.js", "bootstrap/js/bootstrap.bundle.min.js"),
    (_bootstrap, "css/bootstrap.min.css", "bootstrap/css/bootstrap.min.css"),
    (_font_awesome, "css/all.min.css", "fontawesome/css/all.min.css"),
)
#: whole folders the CSS refers to relatively
_DIRS: tuple[tuple[ModuleType, str, str], ...] = (
    (_leaflet, "images", "leaflet/images"),
    (_font_awesome, "webfonts", "fontawesome/webfonts"),
)

#: folium names (the keys of ``folium.Map.default_js`` / ``default_css``) → page-relative URLs
DEFAULT_JS: list[tuple[str, str]] = [
    ("leaflet", f"{LIB}/leaflet/leaflet.js"),
    ("jquery", f"{LIB}/jquery/jquery.min.js"),
    ("bootstrap", f"{LIB}/bootstrap/js/bootstrap.bundle.min.js"),
]
DEFAULT_CSS: list[tuple[str, str]] = [
    ("leaflet_css", f"{LIB}/leaflet/leaflet.css"),
    ("bootstrap_css", f"{LIB}/bootstrap/css/bootstrap.min.css"),
    ("fontawesome_css", f"{LIB}/fontawesome/css/all.min.css"),
]


@dataclass(frozen=True)
class OfflineAssets:
    """Where the assets went (``lib_dir``) and folium-style ``(name, relative url)`` lists for a
    map instance's ``default_js`` / ``default_css``."""

    lib_dir: Path
    js: list[tuple[str, str]]
    css: list[tuple[str, str]]


def copy_assets(out_dir: Path) -> OfflineAssets:
    """Copy Leaflet, jQuery, Bootstrap and Font Awesome into ``out_dir/lib`` (overwriting older
    copies) and return the relative links for the page at ``out_dir/map.html``."""
    lib = Path(out_dir) / LIB
    for pkg, src, dst in _FILES:
        target = lib / dst
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(pkg.BASE_DIR) / src, target)
    for pkg, src, dst in _DIRS:
        shutil.copytree(Path(pkg.BASE_DIR) / src, lib / dst, dirs_exist_ok=True)
    log.debug("copied Leaflet %s, jQuery %s, Bootstrap %s, Font Awesome %s to %s",
              _leaflet.VERSION, _jquery.VERSION, _bootstrap.VERSION, _font_awesome.VERSION, lib)
    return OfflineAssets(lib_dir=lib, js=list(DEFAULT_JS), css=list(DEFAULT_CSS))

"""Chinese text in figures and pages: which installed CJK font to use.

Pages name a CSS font stack (the browser picks the first installed family, Noto Sans CJK SC from
Debian's ``fonts-noto-cjk`` first). Figures ask matplotlib (≥ 3.6 falls back per glyph through
``font.family``) for the same families; with none installed, Chinese labels would be drawn as
empty boxes, so :func:`cjk_families` logs a warning naming the package to install.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import matplotlib
import matplotlib.font_manager as fm

log = logging.getLogger(__name__)

#: Simplified-Chinese sans families, most preferred first (Noto = Adobe's Source Han Sans).
CJK_FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC", "SimHei")
#: CSS ``font-family`` for every page: Latin first, then CJK (the browser falls back per glyph).
CSS_FONT_STACK = "system-ui, 'DejaVu Sans', Arial, " + ", ".join(f"'{f}'" for f in CJK_FAMILIES) + ", sans-serif"


def cjk_families() -> list[str]:
    """The families of :data:`CJK_FAMILIES` that matplotlib finds installed (may be empty)."""
    installed = {f.name for f in fm.fontManager.ttflist}
    found = [f for f in CJK_FAMILIES if f in installed]
    if not found:
        log.warning("no CJK font found (tried %s); Chinese labels in figures will not render: "
                    "install one, e.g. Debian's fonts-noto-cjk", ", ".join(CJK_FAMILIES))
    return found


@contextlib.contextmanager
def figure_fonts() -> Iterator[None]:
    """A matplotlib rc context whose text falls back to an installed CJK font; SVGs keep text as
    text (selectable, searchable, small), drawn by the viewer's fonts like the pages."""
    with matplotlib.rc_context({"font.family": ["DejaVu Sans", *cjk_families()], "axes.unicode_minus": False, "svg.fonttype": "none"}):
        yield


def plain(text: object) -> str:
    """Text from an input file for a matplotlib label: ``$`` escaped so that a name is never
    parsed as mathtext (two ``$`` would start a formula, and a bad one raises)."""
    return str(text).replace("$", r"\$")

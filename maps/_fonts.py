"""Chinese text in figures and pages: which CJK font to use, found by file.

Pages name a CSS font stack (the browser picks the first installed family, Noto Sans CJK SC from
Debian's ``fonts-noto-cjk`` first). Figures do not rely on matplotlib's font cache: that list is
written once per ``MPLCONFIGDIR`` and never looks again, so a font installed after the first
matplotlib run stays invisible to it. :func:`cjk_font` finds the font *file* itself (the path in
``REDLINE_CJK_FONT``, then the known files of :data:`CJK_FILES` in the usual font folders, then
any font fontconfig lists for ``zh-cn``) and registers it with
``matplotlib.font_manager.fontManager.addfont``, whatever the cache holds.

Every figure is saved through :func:`save_figure`, which first drops from each label the
characters that none of its fonts can draw (:func:`fit_text`): with no CJK font at all the
bilingual labels fall back to their Latin part, and matplotlib is never asked for a missing glyph,
so it never warns (hundreds of ``Glyph … missing from font(s)`` lines before). That is one
warning line per process instead, naming the package to install. Nothing here touches the
process-wide warning filters, so it is safe in the scan's worker threads.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.font_manager as fm
from matplotlib import cbook
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.ft2font import FT2Font
from matplotlib.text import Text
from matplotlib.ticker import FixedFormatter, FuncFormatter

log = logging.getLogger(__name__)

__all__ = ["CJK_FAMILIES", "CJK_FILES", "CSS_FONT_STACK", "ENV_VAR", "INSTALL_HINT", "FigureFont", "cjk_font", "figure_font_name",
           "find_cjk_font_file", "figure_fonts", "fit_text", "save_figure", "plain"]

#: Simplified-Chinese sans families, most preferred first (Noto = Adobe's Source Han Sans).
CJK_FAMILIES = ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
                "Microsoft YaHei", "PingFang SC", "SimHei")
#: Files of those families as their packages install them, most preferred first: Debian's
#: ``fonts-noto-cjk`` (one collection of SC/TC/JP/KR faces), Adobe's and Google's single-language
#: files, Debian's ``fonts-wqy-zenhei``/``-microhei``, Windows' and macOS's system fonts.
CJK_FILES = ("NotoSansCJK-Regular.ttc", "NotoSansCJKsc-Regular.otf", "SourceHanSansSC-Regular.otf", "NotoSansSC-Regular.otf",
             "NotoSansSC-Regular.ttf", "SourceHanSans-Regular.ttc", "wqy-zenhei.ttc", "wqy-microhei.ttc", "msyh.ttc", "msyh.ttf",
             "PingFang.ttc", "simhei.ttf")
#: Environment variable naming a CJK font file (.ttf, .otf, .ttc) to use before any other.
ENV_VAR = "REDLINE_CJK_FONT"
#: What to do when no CJK font is found (the one warning line says it).
INSTALL_HINT = (f"install Debian's fonts-noto-cjk (sudo apt-get install fonts-noto-cjk; `make demo` does) "
                f"or set {ENV_VAR} to a Chinese .ttf/.otf/.ttc file")
#: CSS ``font-family`` for every page: Latin first, then CJK (the browser falls back per glyph).
CSS_FONT_STACK = "system-ui, 'DejaVu Sans', Arial, " + ", ".join(f"'{f}'" for f in CJK_FAMILIES) + ", sans-serif"
#: The Latin family of every figure; matplotlib ships it, so every install has it.
LATIN_FAMILY = "DejaVu Sans"


@dataclass(frozen=True)
class FigureFont:
    """The CJK font registered for figures: its family name (as matplotlib reads it) and file."""

    family: str
    path: Path


def _font_dirs() -> list[Path]:
    """Folders where fonts are installed on Linux, macOS and Windows (existing ones only)."""
    home = Path.home()
    dirs = [Path(d) / "fonts" for d in os.environ.get("XDG_DATA_DIRS", "/usr/local/share:/usr/share").split(os.pathsep) if d]
    dirs += [Path(os.environ.get("XDG_DATA_HOME", home / ".local" / "share")) / "fonts", home / ".fonts",
             Path("/Library/Fonts"), Path("/System/Library/Fonts"), home / "Library" / "Fonts"]
    if sys.platform == "win32":
        dirs.append(Path(os.environ.get("WINDIR", r"C:\Windows")) / "Fonts")
    seen: dict[Path, None] = {}
    for d in dirs:
        if d.is_dir():
            seen.setdefault(d.resolve(), None)
    return list(seen)


def _fontconfig_zh() -> list[Path]:
    """Font files fontconfig says cover Simplified Chinese (empty without ``fc-list``)."""
    exe = shutil.which("fc-list")
    if exe is None:
        return []
    try:
        res = subprocess.run([exe, ":lang=zh-cn", "file"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    files = sorted({line.split(":", 1)[0].strip() for line in res.stdout.splitlines() if line.strip()})
    return [Path(f) for f in files if f.lower().endswith((".ttf", ".otf", ".ttc"))]


def find_cjk_font_file() -> Path | None:
    """The CJK font file figures use: ``$REDLINE_CJK_FONT`` if it names a file; else the first of
    :data:`CJK_FILES` found in the usual font folders; else the first font fontconfig lists for
    ``zh-cn``; else None. Read from disk each call (no cache involved)."""
    explicit = os.environ.get(ENV_VAR, "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if path.is_file():
            return path
        log.warning("%s=%s is not a file; looking for an installed CJK font instead", ENV_VAR, explicit)
    wanted = {name.lower(): rank for rank, name in enumerate(CJK_FILES)}
    best: tuple[int, Path] | None = None
    for folder in _font_dirs():
        for root, _dirs, files in os.walk(folder):
            for name in files:
                rank = wanted.get(name.lower())
                if rank is not None and (best is None or rank < best[0]):
                    best = (rank, Path(root) / name)
    if best is not None:
        return best[1]
    listed = _fontconfig_zh()
    return listed[0] if listed else None


_lock = threading.Lock()
#: held while a figure is made or saved (:func:`figure_fonts`; re-entrant: saving nests in making)
FIGURES_LOCK = threading.RLock()
_state: dict[str, object] = {}


def _register(path: Path) -> str:
    """Add every face of ``path`` to matplotlib's font list (whatever its cache holds) and return
    the family to ask for: the first of :data:`CJK_FAMILIES` among the file's faces (a ``.ttc``
    holds several: SC before JP), else the first face's family."""
    resolved = os.path.realpath(path)
    if not any(os.path.realpath(e.fname) == resolved for e in fm.fontManager.ttflist):
        fm.fontManager.addfont(str(path))
    names = [e.name for e in fm.fontManager.ttflist if os.path.realpath(e.fname) == resolved]
    for family in CJK_FAMILIES:
        if family in names:
            return family
    return names[0]


def cjk_font() -> FigureFont | None:
    """The CJK font registered with matplotlib for figures, found once per process
    (:func:`find_cjk_font_file`); None, after one warning line naming the package to install,
    when there is none."""
    with _lock:
        if "font" not in _state:
            path = find_cjk_font_file()
            font = None
            if path is not None:
                try:
                    font = FigureFont(_register(path), path)
                except (OSError, RuntimeError, IndexError) as exc:  # not a font FreeType can read
                    log.warning("CJK font %s cannot be read (%s)", path, exc)
            if font is None:
                log.warning("no CJK font found: Chinese text in figures is left out (Latin labels only); %s", INSTALL_HINT)
            else:
                log.debug("figures draw Chinese with %s (%s)", font.family, font.path)
            _state["font"] = font
        return _state["font"]  # type: ignore[return-value]


def figure_font_name() -> str:
    """The figures' fonts for ``redline --version`` and the manifest, e.g.
    ``DejaVu Sans + Noto Sans CJK SC (/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc)``."""
    font = cjk_font()
    return f"{LATIN_FAMILY} + {font.family} ({font.path})" if font else f"{LATIN_FAMILY} (no CJK font: {INSTALL_HINT})"


@contextlib.contextmanager
def figure_fonts() -> Iterator[None]:
    """A matplotlib rc context whose text falls back (per glyph) from DejaVu Sans to the CJK font
    of :func:`cjk_font`; SVGs keep text as text (selectable, searchable, small), drawn by the
    viewer's fonts like the pages."""
    font = cjk_font()
    families = [LATIN_FAMILY, *([font.family] if font else [])]
    # one thread draws at a time: rc_context and pyplot's figure list are process-wide (matplotlib's
    # "Thread safety" FAQ: not thread-safe); the scan draws figures next to other outputs
    with FIGURES_LOCK, matplotlib.rc_context({"font.family": families, "svg.fonttype": "none"}):
        yield


@functools.lru_cache(maxsize=64)
def _covered(families: tuple[str, ...]) -> frozenset[int]:
    """Code points some font of ``families`` has a glyph for (matplotlib falls back through the
    list glyph by glyph); generic names (``sans-serif``) resolve through the rc lists."""
    points: set[int] = set()
    seen: set[tuple[str, int]] = set()
    for family in families:
        try:
            found = fm.findfont(fm.FontProperties(family=[family]), fallback_to_default=False)
        except ValueError:
            continue
        key = (str(getattr(found, "path", found)), int(getattr(found, "face_index", 0)))
        if key not in seen:
            seen.add(key)
            # face_index: matplotlib ≥ 3.11 (fonts of a .ttc beyond the first); 3.10 reads face 0
            points.update((FT2Font(key[0], face_index=key[1]) if key[1] else FT2Font(key[0])).get_charmap())
    return frozenset(points)


_BRACKETS = re.compile(r"[(（\[]\s*[)）\]]")
_SPACES = re.compile(r"[ \t]{2,}")
_DANGLING = re.compile(r"(^[\s·:,;]+|[\s·:,;]+$)", re.MULTILINE)


def _drawable(text: str, covered: frozenset[int], dropped: set[str]) -> str:
    """``text`` without the characters no font can draw, tidied (empty brackets and doubled
    spaces removed): ``"alerts 预警 (by type)"`` → ``"alerts (by type)"`` without a CJK font."""
    if all(ord(c) in covered or c.isspace() for c in text):
        return text
    kept = []
    for c in text:
        if ord(c) in covered or c.isspace():
            kept.append(c)
        else:
            dropped.add(c)
            kept.append(" ")
    out = _SPACES.sub(" ", _BRACKETS.sub("", "".join(kept)))
    return _DANGLING.sub("", out)


def fit_text(fig: Figure) -> None:
    """Drop from every label of ``fig`` (titles, legends, annotations and fixed tick labels) the
    characters none of its fonts has a glyph for, before anything measures or draws them. Call
    it before ``tight_layout``; :func:`save_figure` does."""
    dropped: set[str] = set()
    for text in fig.findobj(lambda a: isinstance(a, Text)):
        s = text.get_text()
        if not s or text.get_usetex() or cbook.is_math_text(s):
            continue
        new = _drawable(s, _covered(tuple(text.get_fontfamily())), dropped)
        if new != s:
            text.set_text(new)
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            labels = axis.get_ticklabels()
            # ticks are made when drawn, in the rc context of save_figure (a shared axis may list none)
            covered = _covered(tuple(labels[0].get_fontfamily() if labels else matplotlib.rcParams["font.family"]))
            for fmt in (axis.get_major_formatter(), axis.get_minor_formatter()):
                _fit_formatter(fmt, covered, dropped)
    if dropped:
        _report_dropped(dropped)


def _fit_formatter(fmt: object, covered: frozenset[int], dropped: set[str]) -> None:
    """Fit the labels a tick formatter holds: ``FixedFormatter`` (``set_ticklabels``) and the
    label dict ``set_ticks(..., labels)`` wraps in a ``FuncFormatter``; other formatters make
    numbers and dates, which DejaVu Sans draws."""
    if isinstance(fmt, FixedFormatter):
        fmt.seq = [_drawable(str(s), covered, dropped) for s in fmt.seq]
    elif isinstance(fmt, FuncFormatter) and isinstance(fmt.func, functools.partial) and fmt.func.args and isinstance(fmt.func.args[0], dict):
        part = fmt.func
        fitted = {k: _drawable(str(v), covered, dropped) for k, v in part.args[0].items()}
        fmt.func = functools.partial(part.func, fitted, *part.args[1:], **part.keywords)


def _report_dropped(chars: set[str]) -> None:
    """One warning line per process for characters left out although a CJK font is there (a
    script it lacks, e.g. Tibetan or Uyghur names); without a CJK font :func:`cjk_font` warned."""
    with _lock:
        if _state.get("dropped_reported") or _state.get("font") is None:
            return
        _state["dropped_reported"] = True
    sample = "".join(sorted(chars)[:12])
    log.warning("figure labels: %d character(s) without a glyph in the figure fonts left out (%s)", len(chars), sample)


def save_figure(fig: Figure, paths: Iterable[Path], *, tight: bool = False, fix: Iterable[Legend] = ()) -> list[Path]:
    """Fit the labels (:func:`fit_text`), lay out (``tight``) and save ``fig`` to each path (PNG,
    SVG, PDF by suffix), in the figures' rc context (fonts; SVG text kept as text, and without a
    timestamp so that re-renders compare). The legends in ``fix`` (placed ``loc="best"``) are
    pinned where the layout put them, so that each file's draw does not search for the best place
    again (the search measures every artist of the axes: ~0.03 s a draw). Returns the paths."""
    out = [Path(p) for p in paths]
    with figure_fonts():
        fit_text(fig)
        if tight:
            fig.tight_layout()
        for legend in fix:
            _pin(legend)
        for p in out:
            p.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(p, metadata={"Date": None} if p.suffix == ".svg" else None)
    return out


def _pin(legend: Legend) -> None:
    """Pin ``legend`` at the place its current location puts it: its frame's lower-left corner, in
    the fraction of the axes it belongs to, becomes its ``loc``. That fraction is the same at any
    dpi, so the PNG and the SVG put it where the layout did."""
    fig = legend.get_figure(root=True)
    box = legend.get_window_extent(fig.canvas.get_renderer())
    x0, y0 = legend.axes.transAxes.inverted().transform((box.x0, box.y0))
    legend.set_loc((float(x0), float(y0)))


def plain(text: object) -> str:
    """Text from an input file for a matplotlib label: ``$`` escaped so that a name is never
    parsed as mathtext (two ``$`` would start a formula, and a bad one raises)."""
    return str(text).replace("$", r"\$")

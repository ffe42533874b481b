"""Chinese labels in figures on any machine (issue #29).

- A stale matplotlib font cache (written before the CJK font was installed, as after ``make demo``
  on a fresh machine used to be) cannot hide the font: redline finds it by file and registers it,
  so a Chinese label is drawn with real glyphs and matplotlib never warns.
- With no CJK font at all, one warning line per process names the package to install, every
  figure falls back to its Latin labels, and matplotlib never warns about a missing glyph.

Each case runs in a subprocess with its own ``MPLCONFIGDIR`` and ``-W error::UserWarning`` (a glyph
warning is a UserWarning and would fail the run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maps import CJK_FILES, find_cjk_font_file

ROOT = Path(__file__).resolve().parents[1]

#: renders a county summary figure (Chinese name, zone ids and bilingual labels) and an NDVI
#: trend figure with a Chinese title (PNG, SVG) and with its Latin part only, twice each, then
#: prints the figures' font and the families matplotlib's font list holds
_RENDER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import pandas as pd
    import maps
    import matplotlib.font_manager as fm

    out = Path(sys.argv[1])
    zones = pd.DataFrame({"zone_id": ["龙门山-01", "HX-0002"], "status": ["ok", "not_observed"], "alerts_clearing": [2, 0],
                          "disturbed_area_m2": [5000.0, 0.0], "ndvi_baseline": [0.71, 0.64], "ndvi_monitor": [0.62, 0.65]})
    admin = pd.Series({"admin_id": "510181", "admin_name": "都江堰市", "alerts_total": 2})
    annual = pd.DataFrame({"admin_id": ["510181"] * 3, "year": [2021, 2022, 2023], "ndvi_gs": [0.7, 0.68, 0.66]})
    for k in range(2):
        maps.render_county_figure(out / f"run{k}", admin, zones)
        maps.render_trends(out / f"run{k}" / "trend.png", annual, title="年度生长季 NDVI")
        maps.render_trends(out / f"run{k}" / "trend.svg", annual, title="年度生长季 NDVI")
        maps.render_trends(out / f"run{k}" / "latin.png", annual, title="NDVI")
    print(json.dumps({"font": maps.figure_font_name(), "cached": sorted({e.name for e in fm.fontManager.ttflist})}))
""")


def _env(mplconfig: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDLINE_CJK_FONT", "MPLCONFIGDIR")}
    env.update(MPLCONFIGDIR=str(mplconfig), PYTHONPATH=str(ROOT), **extra)
    return env


def _run(code: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code, *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)


def _ink(png: Path, top_px: int = 30) -> int:
    """Dark pixels in the top band of a figure (where its title is drawn)."""
    img = np.asarray(Image.open(png).convert("L"))[:top_px]
    return int((img < 128).sum())


def _svg_text(svg: Path) -> str:
    return svg.read_text(encoding="utf-8")


def test_a_stale_font_cache_cannot_hide_the_cjk_font(tmp_path):
    font = find_cjk_font_file()
    assert font is not None, "no CJK font on this machine: `make test` installs Debian's fonts-noto-cjk (target fonts)"
    cfg = tmp_path / "mpl"
    cfg.mkdir()
    # matplotlib writes its font list once per MPLCONFIGDIR; make it, then take every CJK font out
    # of it, as if it had been written before fonts-noto-cjk was installed
    built = _run("import matplotlib.font_manager", [], _env(cfg))
    assert built.returncode == 0, built.stderr
    (cache,) = cfg.glob("fontlist-v*.json")
    data = json.loads(cache.read_text())
    cjk_names = {name.lower() for name in CJK_FILES}
    kept = [e for e in data["ttflist"] if Path(e["fname"]).name.lower() not in cjk_names and "CJK" not in e["name"]
            and os.path.realpath(e["fname"]) != os.path.realpath(font)]
    assert len(kept) < len(data["ttflist"]), "the cache did not list the CJK font; nothing to make stale"
    data["ttflist"] = kept
    cache.write_text(json.dumps(data))
    stale = cache.read_text()

    res = _run(_RENDER, [str(tmp_path / "figs")], _env(cfg))
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr == "", res.stderr[-3000:]  # no glyph warning, no font warning
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert str(font) in info["font"] and "no CJK font" not in info["font"]
    assert cache.read_text() == stale  # matplotlib kept its stale list: the font was found by file, not through the cache

    figs = tmp_path / "figs" / "run0"
    svg = _svg_text(figs / "figures" / "county_510181.svg")  # SVG keeps text as text: the labels as drawn
    for label in ("都江堰市 (510181)", "alerts 预警 (by type)", "龙门山-01", "扰动面积"):
        assert label in svg, label
    # the Chinese title is drawn with glyphs: more ink than its Latin part alone (a missing glyph
    # would have warned, and failed the run)
    assert ">年度生长季 NDVI<" in _svg_text(figs / "trend.svg")
    assert _ink(figs / "trend.png") > _ink(figs / "latin.png") + 100


def test_without_a_cjk_font_one_warning_line_and_latin_labels(tmp_path):
    cfg = tmp_path / "mpl"
    cfg.mkdir()
    nowhere = tmp_path / "no-fonts"
    nowhere.mkdir()
    # no font folder with a CJK file, no fontconfig on PATH: redline finds no CJK font (matplotlib's
    # own cache may still list system fonts; redline does not ask it)
    env = _env(cfg, HOME=str(nowhere), XDG_DATA_DIRS=str(nowhere), XDG_DATA_HOME=str(nowhere), PATH=str(nowhere))
    res = _run(_RENDER, [str(tmp_path / "figs")], env)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr[-3000:]  # one line for two runs of three figures, no glyph warning
    assert "no CJK font found" in lines[0] and "fonts-noto-cjk" in lines[0] and "REDLINE_CJK_FONT" in lines[0]
    info = json.loads(res.stdout.strip().splitlines()[-1])
    assert info["font"].startswith("DejaVu Sans (no CJK font")

    for run in ("run0", "run1"):
        svg = _svg_text(tmp_path / "figs" / run / "figures" / "county_510181.svg")
        assert not any(0x2E80 <= ord(c) <= 0x9FFF for c in svg)  # no Chinese character left to draw as a box
        for label in ("(510181)", "alerts (by type)", "disturbed area (ha)", "-01", "HX-0002 *"):
            assert label in svg, label
    figs = tmp_path / "figs" / "run0"
    assert ">NDVI<" in _svg_text(figs / "trend.svg")  # the title's Latin part
    assert np.array_equal(np.asarray(Image.open(figs / "trend.png")), np.asarray(Image.open(figs / "latin.png")))


def test_redline_version_names_the_figure_font():
    font = find_cjk_font_file()
    assert font is not None, "no CJK font on this machine: `make test` installs Debian's fonts-noto-cjk (target fonts)"
    res = subprocess.run([sys.executable, "-m", "redline.cli", "--version"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    line = [ln for ln in res.stdout.splitlines() if "figure_font:" in ln]
    assert line and str(font) in line[0], res.stdout


def _warning_lines(res: subprocess.CompletedProcess) -> list[str]:
    """The lines of a command's output (stdout and stderr) that say "warning", as `grep -ci warning` counts them."""
    return [ln for ln in (res.stdout + res.stderr).splitlines() if "warning" in ln.lower()]


@pytest.mark.slow
def test_redline_map_warns_once_without_a_cjk_font_and_never_with_one(small_scan, tmp_path):
    """The command line re-renders the figures of a real scan: with the set-up's CJK font no
    warning line at all; without any CJK font exactly one (not one per glyph and figure)."""
    font = find_cjk_font_file()
    assert font is not None, "no CJK font on this machine: `make test` installs Debian's fonts-noto-cjk (target fonts)"
    out = tmp_path / "out"
    shutil.copytree(small_scan.out_dir, out)
    cmd = [sys.executable, "-m", "redline.cli", "map", str(out)]
    runs = {}
    nowhere = tmp_path / "no-fonts"
    nowhere.mkdir()
    for case, extra in (("font", {}), ("no font", {"HOME": str(nowhere), "XDG_DATA_DIRS": str(nowhere), "XDG_DATA_HOME": str(nowhere),
                                                   "PATH": str(nowhere)})):
        (tmp_path / case).mkdir()
        runs[case] = subprocess.run(cmd, capture_output=True, text=True, env=_env(tmp_path / case, **extra), cwd=ROOT, timeout=600)
        assert runs[case].returncode == 0, runs[case].stderr[-3000:]
    assert _warning_lines(runs["font"]) == []
    (line,) = _warning_lines(runs["no font"])
    assert "no CJK font found" in line and "fonts-noto-cjk" in line
    svgs = sorted((out / "figures").glob("county_*.svg"))
    assert svgs and not any(0x2E80 <= ord(c) <= 0x9FFF for c in svgs[0].read_text(encoding="utf-8"))  # the last run's: Latin labels only

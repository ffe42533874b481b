"""scan.yml: valid configs resolve; each bad one is one line naming the key and the value."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest

from redline.config import load_config
from redline.errors import ConfigError

GOOD = """\
name: sichuan-2023
stac:
  url: http://127.0.0.1:8080
  collections: [sentinel-2-c1-l2a]
  max_cloud_cover: 80
zones:
  path: zones.gpkg
  layer: hongxian
  id_field: HXBH
  name_field: HXMC
baseline: {start: "2021-01-01", end: "2022-12-31"}
monitor:  {start: "2023-01-01", end: "2023-12-31"}
resolution: 10
detection:
  min_area_m2: 5000
register: reg/register.gpkg
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "scan.yml"
    p.write_text(text, encoding="utf-8")
    return p


def test_good_config_resolves_paths_against_its_folder(tmp_path):
    cfg = load_config(_write(tmp_path, GOOD))
    assert cfg.zones.path == (tmp_path / "zones.gpkg").resolve()
    assert cfg.register_path == (tmp_path / "reg" / "register.gpkg").resolve()
    assert cfg.detection.consecutive == 2 and cfg.detection.min_area_m2 == 5000
    assert cfg.monitor.end == dt.date(2023, 12, 31)


def test_end_today_is_resolved(tmp_path):
    cfg = load_config(_write(tmp_path, GOOD.replace('end: "2023-12-31"', "end: today")))
    assert cfg.monitor.end == dt.date.today()


def test_overrides_merge_into_sections(tmp_path):
    cfg = load_config(_write(tmp_path, GOOD), overrides={"stac": {"url": "http://127.0.0.1:9"}})
    assert cfg.stac.url == "http://127.0.0.1:9" and cfg.stac.max_cloud_cover == 80


def test_masks_defaults_to_required_and_takes_assume_clear(tmp_path):
    cfg = load_config(_write(tmp_path, GOOD))
    assert cfg.masks == "required" and cfg.source == tmp_path / "scan.yml"
    cfg = load_config(_write(tmp_path, GOOD + "masks: assume-clear\n"))
    assert cfg.masks == "assume-clear"
    assert cfg.model_dump(mode="json")["masks"] == "assume-clear"  # recorded in the manifest's resolved config


BAD = [
    ("unknown key", GOOD.replace("resolution: 10", "resolutoin: 10"), ["unknown key", "resolutoin"]),
    ("unknown nested key", GOOD.replace("min_area_m2: 5000", "min_area: 5000"), ["detection.min_area"]),
    ("wrong type", GOOD.replace("resolution: 10", "resolution: ten"), ["resolution", "'ten'"]),
    ("missing required key", GOOD.replace("  id_field: HXBH\n", ""), ["missing required key", "zones.id_field"]),
    ("end before start", GOOD.replace('monitor:  {start: "2023-01-01", end: "2023-12-31"}', 'monitor:  {start: "2023-06-01", end: "2023-01-01"}'), ["monitor", "before start"]),
    ("monitor overlaps baseline", GOOD.replace('start: "2023-01-01"', 'start: "2022-06-01"'), ["monitor.start", "baseline.end"]),
    ("bad resolution", GOOD.replace("resolution: 10", "resolution: -5"), ["resolution", "-5"]),
    ("unknown profile", GOOD.replace("  max_cloud_cover: 80", "  max_cloud_cover: 80\n  profile: google-earth"), ["stac.profile", "google-earth"]),
    ("cloud cover out of range", GOOD.replace("max_cloud_cover: 80", "max_cloud_cover: 180"), ["stac.max_cloud_cover", "180"]),
    ("invalid yaml", GOOD.replace("resolution: 10", "resolution: [10"), ["invalid YAML", "line"]),
    ("not a mapping", "- a\n- b\n", ["expected a mapping"]),
    ("unknown masks value", GOOD + "masks: assume_clear\n", ["masks = 'assume_clear'", "'required' or 'assume-clear'"]),
]


@pytest.mark.parametrize("case,text,needles", BAD, ids=[b[0] for b in BAD])
def test_bad_config_is_one_line_naming_the_key(tmp_path, case, text, needles):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yml")

"""Fixed styles (alert type fill, review-status outline, zone category colour), the legend, and
escaping of text from input files."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from redline.vocabulary import (
    ACTIVITY_CLASSES, CHANGE_TYPES, CONFIDENCE_LABELS, DISTURBANCE_LABELS, DISTURBANCE_TYPES, STATUS_LABELS, STATUSES,
)


class TypeStyle(NamedTuple):
    """Fill of an alert polygon by ``disturbance_type``."""

    colour: str
    label: str  # bilingual legend label, English first


class StatusStyle(NamedTuple):
    """Outline of an alert polygon by review ``status``; ``weight`` in CSS pixels, ``dash`` a
    Leaflet/SVG ``dashArray`` (None: solid)."""

    colour: str
    weight: int
    dash: str | None
    label: str


def bilingual(pair: tuple[str, str]) -> str:
    """A (Chinese, English) label of :mod:`redline.vocabulary` as the map and report show it,
    English first: ``("新发现", "new")`` → ``"new 新发现"``."""
    zh, en = pair
    return f"{en} {zh}"


#: alert fill colour by disturbance type (stable order = legend order); labels are the
#: vocabulary's (the review service and the ledger use the same words)
_TYPE_COLOURS = {"clearing": "#ffd92f", "construction": "#e7298a", "mining": "#a6761d", "fire": "#d95f02", "water_loss": "#1f78b4",
                 "other": "#9e9e9e"}
TYPE_STYLE: dict[str, TypeStyle] = {k: TypeStyle(_TYPE_COLOURS[k], bilingual(DISTURBANCE_LABELS[k])) for k in DISTURBANCE_TYPES}
#: alert outline by review status (stable order = the review workflow): colour, weight, dash
_STATUS_LINES = {
    "new": ("#ff0000", 4, None), "under_review": ("#ff9900", 3, None), "field_check": ("#7b3294", 3, None), "confirmed": ("#000000", 3, None),
    "dismissed": ("#808080", 2, "4 4"), "rectifying": ("#0571b0", 3, "6 3"), "rectified": ("#1a9850", 3, None), "recovered": ("#66bd63", 2, "2 4"),
}
STATUS_STYLE: dict[str, StatusStyle] = {k: StatusStyle(*_STATUS_LINES[k], bilingual(STATUS_LABELS[k])) for k in STATUSES}
#: zone tiers (管控分区) of a zones file's ``tier_field``: code → (Chinese, English)
TIER_LABELS: dict[str, tuple[str, str]] = {"core": ("核心保护区", "core"), "general": ("一般控制区", "general"), "buffer": ("缓冲区", "buffer"),
                                           "experimental": ("实验区", "experimental")}
#: a zone's observation status (zone_stats ``status``): code → (Chinese, English)
ZONE_STATUS_LABELS: dict[str, tuple[str, str]] = {"not_observed": ("未有效观测", "not observed"), "alerts": ("有预警", "alerts"),
                                                  "no_alert": ("无预警", "no alert")}
_CODE_LABELS: dict[str, Mapping[str, tuple[str, str]]] = {
    "type": DISTURBANCE_LABELS, "status": STATUS_LABELS, "confidence": CONFIDENCE_LABELS, "change": CHANGE_TYPES, "activity": ACTIVITY_CLASSES,
    "tier": TIER_LABELS, "zone_status": ZONE_STATUS_LABELS,
}


def code_label(kind: str, code: object) -> str:
    """The bilingual label (English first, :func:`bilingual`) of a supervision code: ``kind`` is
    one of type, status, confidence, change, activity, tier, zone_status. A comma-separated
    list of codes (``activity_candidates``) gives its labels joined by "; "; an unknown code is
    shown as it is, a missing one as '–'."""
    if code is None or (isinstance(code, float) and code != code) or not str(code).strip():
        return "–"
    labels = _CODE_LABELS[kind]
    return "; ".join(bilingual(labels[c]) if c in labels else c for c in (p.strip() for p in str(code).split(",")) if c)


#: zone colour by ``category`` for the categories of the national red-line guidelines
#: (ecological function, then ecological sensitivity); English labels for the legend
CATEGORY_STYLE: dict[str, tuple[str, str]] = {
    "水源涵养": ("#0570b0", "water conservation"),
    "生物多样性维护": ("#238b45", "biodiversity"),
    "水土保持": ("#b8860b", "soil & water conservation"),
    "防风固沙": ("#bf812d", "windbreak & sand fixation"),
    "海岸生态稳定": ("#01665e", "coastal stability"),
    "水土流失": ("#7570b3", "soil erosion"),
    "土地沙化": ("#e6ab02", "desertification"),
    "石漠化": ("#666666", "rocky desertification"),
    "盐渍化": ("#66c2a5", "salinisation"),
}
#: colours for categories not listed above, assigned in sorted order of the category text
EXTRA_CATEGORY_COLOURS = ("#1b7837", "#35978f", "#4d9221", "#5aae61", "#80cdc1", "#7fbc41", "#00441b")
UNCATEGORISED = ("#31a354", "uncategorised 未分类")
ADMIN_STYLE = {"color": "#333333", "weight": 2, "dashArray": "8 6", "fill": False, "opacity": 0.9}
NOT_OBSERVED_DASH = "2 6"  # zones the scan could not observe (zone_stats status ``not_observed``)
#: their fill: grey, with a CSS class on the SVG path (``NOT_OBSERVED_CLASS``) that hatches it
NOT_OBSERVED_FILL = "#808080"
NOT_OBSERVED_CLASS = "redline-not-observed"
#: the hatch: an SVG pattern in the page, used as the fill of paths with ``NOT_OBSERVED_CLASS``
NOT_OBSERVED_HATCH = (
    "<svg width='0' height='0' style='position:absolute'><defs><pattern id='redline-hatch' patternUnits='userSpaceOnUse' width='8' height='8'"
    " patternTransform='rotate(45)'><rect width='8' height='8' fill='#808080' fill-opacity='0.25'/><line x1='0' y1='0' x2='0' y2='8'"
    " stroke='#555' stroke-width='3'/></pattern></defs></svg>"
    "<style>path.redline-not-observed { fill: url(#redline-hatch); fill-opacity: 0.6; }</style>"
)


def esc(value: object) -> str:
    """Escape text from input files for HTML, and for the JavaScript template literals folium
    wraps popups and tooltips in (a backtick, ``${`` or a backslash would otherwise break out of
    them or be interpreted). ``None`` becomes an empty string."""
    text = html.escape("" if value is None else str(value), quote=True)
    return text.replace("\\", "&#92;").replace("`", "&#96;").replace("$", "&#36;")


def category_colours(categories: Iterable[object]) -> dict[str, str]:
    """Colour per zone category: fixed for the guideline categories, then the extra palette in
    sorted order for any others (so the same input always gets the same colours)."""
    present = sorted({str(c) for c in categories if c is not None and str(c).strip() and str(c) != "nan"})
    out: dict[str, str] = {}
    extra = 0
    for cat in present:
        if cat in CATEGORY_STYLE:
            out[cat] = CATEGORY_STYLE[cat][0]
        else:
            out[cat] = EXTRA_CATEGORY_COLOURS[extra % len(EXTRA_CATEGORY_COLOURS)]
            extra += 1
    return out


def category_label(category: object) -> str:
    """A zone category as shown: the input text, then the English name of a guideline category
    (``"水源涵养 water conservation"``); '–' when missing."""
    if category is None or (isinstance(category, float) and category != category) or not str(category).strip():
        return "–"
    cat = str(category)
    return f"{cat} {CATEGORY_STYLE[cat][1]}" if cat in CATEGORY_STYLE else cat


def _swatch(css: str) -> str:
    return f"<span style='display:inline-block;width:14px;height:10px;margin-right:5px;vertical-align:middle;{css}'></span>"


def _outline_css(s: StatusStyle) -> str:
    line = "dashed" if s.dash else "solid"
    return f"border:{s.weight}px {line} {s.colour};background:#fff;box-sizing:border-box"


def legend_html(
    categories: Mapping[str, str],
    *,
    type_counts: Mapping[str, int],
    status_counts: Mapping[str, int],
    has_admin: bool,
    has_uncategorised: bool,
    has_not_observed: bool,
) -> str:
    """The legend: a fixed-position HTML element (no JavaScript), bilingual labels, alert counts
    per type and status. Category names come from the input and are escaped here."""
    types = "".join(
        f"<div data-type='{k}'>{_swatch(f'background:{s.colour}')}{esc(s.label)} ({type_counts.get(k, 0)})</div>"
        for k, s in TYPE_STYLE.items()
    )
    statuses = "".join(
        f"<div data-status='{k}'>{_swatch(_outline_css(s))}{esc(s.label)} ({status_counts.get(k, 0)})</div>"
        for k, s in STATUS_STYLE.items()
    )
    zone_rows = [
        f"<div>{_swatch(f'border:2px solid {col};background:{col}33;box-sizing:border-box')}"
        f"{esc(cat)}{' ' + esc(CATEGORY_STYLE[cat][1]) if cat in CATEGORY_STYLE else ''}</div>"
        for cat, col in categories.items()
    ]
    if has_uncategorised:
        col, label = UNCATEGORISED
        zone_rows.append(f"<div>{_swatch(f'border:2px solid {col};background:{col}33;box-sizing:border-box')}{esc(label)}</div>")
    if has_not_observed:
        zone_rows.append(f"<div data-zone-status='not_observed'>{_swatch('border:2px dotted #555;box-sizing:border-box;background:repeating-linear-gradient(45deg,#555 0 2px,#ccc 2px 5px)')}"
                         "not observed (cloud): no alert ≠ no change 未有效观测（无预警≠无变化）</div>")
    if has_admin:
        zone_rows.append(f"<div>{_swatch('border-top:2px dashed #333;height:0')}county border 县级行政区界</div>")
    return (
        "<div id='redline-legend' style='position:fixed;bottom:52px;left:10px;z-index:1000;background:rgba(255,255,255,.92);"
        "padding:6px 10px;font:12px/1.5 sans-serif;border:1px solid #999;border-radius:4px;max-height:70%;overflow:auto'>"
        "<details open><summary style='cursor:pointer;font-weight:bold'>Legend 图例</summary>"
        f"<div style='font-weight:bold;margin-top:4px'>Alert type 变化类型</div>{types}"
        f"<div style='font-weight:bold;margin-top:4px'>Review status 核查状态</div>{statuses}"
        f"<div style='font-weight:bold;margin-top:4px'>Red-line zones 生态保护红线</div>{''.join(zone_rows)}"
        "</details><div id='redline-offline-note' style='display:none;color:#a00;margin-top:4px'>"
        "online basemap unreachable (offline) 在线底图无法加载</div></div>"
    )

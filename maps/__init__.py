"""Maps for reviewers: an offline interactive map of a finished scan (folium, with Leaflet and
its companions copied from installed packages, never fetched from a CDN).

``maps`` reads a finished scan's output folder and, optionally, the alert register; never the
pipeline's internals.
"""

from maps._assessment import GRADE_COLOURS, render_grade_shares, render_trends
from maps._figures import render_chip, render_timeseries, true_colour
from maps._map import render_map
from maps._style import CATEGORY_STYLE, STATUS_STYLE, TYPE_STYLE, esc

__all__ = ["render_map", "render_chip", "render_timeseries", "true_colour", "TYPE_STYLE", "STATUS_STYLE", "CATEGORY_STYLE", "esc", "render_grade_shares", "render_trends", "GRADE_COLOURS"]

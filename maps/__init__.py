"""Maps for reviewers: an offline interactive map (folium + Leaflet from installed packages).

``maps`` reads a finished scan's outputs and the register, never the pipeline's internals.
"""

from maps._map import STATUS_STYLE, TYPE_STYLE, esc, render_map

__all__ = ["render_map", "TYPE_STYLE", "STATUS_STYLE", "esc"]

"""The Status tab's tracking bar of one plant: Pref against P POI (kW), as a small horizontal bar
figure and its patch. Pure: numbers in, plotly dicts out."""
from __future__ import annotations

from dash import Patch

from dashboard import constants as C


def tracking_figure(pref_kw: float | None, p_poi_kw: float | None, p_min_kw: float, p_max_kw: float) -> dict:
    """The bar figure: Pref and P POI (kW, None: no bar) on an axis from p_min_kw to p_max_kw."""
    return {
        "data": [{
            "type": "bar", "orientation": "h", "y": ["Pref", "P POI"],
            "x": [pref_kw, p_poi_kw],
            "marker": {"color": [C.COLOR_P_SETPOINT, C.COLOR_P_POI]},
            "hovertemplate": "%{y}: %{x:.1f} kW<extra></extra>",
        }],
        "layout": {
            "height": C.TRACKING_FIGURE_HEIGHT, "margin": {"l": 50, "r": 20, "t": 5, "b": 30},
            "xaxis": {"range": [p_min_kw, p_max_kw], "title": {"text": "kW"}, "zeroline": True,
                      "zerolinecolor": "#999", "gridcolor": "#eee"},
            "yaxis": {"autorange": "reversed"},
            "plot_bgcolor": "#fff", "paper_bgcolor": "#fff", "showlegend": False,
            "uirevision": "tracking",
        },
    }


def tracking_patch(pref_kw: float | None, p_poi_kw: float | None) -> Patch:
    """The two bars set to new values (kW)."""
    patch = Patch()
    patch["data"][0]["x"] = [pref_kw, p_poi_kw]
    return patch

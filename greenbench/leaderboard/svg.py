"""Charts drawn on the server as SVG: no JavaScript, nothing fetched from anywhere (pages work offline).

Terms:
    lane marker: how a point shows its energy method, so a measurement and an estimate are never read
        alike: ``counter`` a filled circle, ``estimate`` a hollow triangle, ``simulated`` a hollow square,
        each in its own colour and named in the legend (shape and fill, not colour alone, tell them apart).
    log axis: J/token and tokens/s span decades between a simulated chip and a CPU, so both axes are
        logarithmic, ticked at powers of ten with SI labels.

Every text that comes from a result (names, labels, links) is escaped here; a point links to its
result's page and carries its values in a ``<title>`` tooltip.
"""

from __future__ import annotations

import math
from html import escape
from typing import Iterable

from greenbench.leaderboard.units import si

__all__ = ["scatter", "strip", "series", "LANE_STYLE"]

#: lane -> (label, colour)
LANE_STYLE = {
    "counter": ("measured (energy counter)", "#1b7f3a"),
    "estimate": ("estimated (model)", "#b35900"),
    "simulated": ("simulated", "#1f5fbf"),
}
_W, _H = 640, 360
_M = {"left": 72, "right": 16, "top": 50, "bottom": 48}


def _marker(lane: str, x: float, y: float) -> str:
    colour = LANE_STYLE.get(lane, ("", "#555"))[1]
    if lane == "counter":
        return f'<circle class="pt counter" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}" stroke="{colour}"/>'
    if lane == "estimate":
        return (f'<path class="pt estimate" d="M{x:.1f},{y - 5:.1f}L{x + 4.5:.1f},{y + 3.5:.1f}L{x - 4.5:.1f},'
                f'{y + 3.5:.1f}Z" fill="#fff" stroke="{colour}" stroke-width="1.6"/>')
    return (f'<rect class="pt simulated" x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="#fff" '
            f'stroke="{colour}" stroke-width="1.6"/>')


class _LogAxis:
    def __init__(self, values: list[float], lo_px: float, hi_px: float):
        vals = [v for v in values if v is not None and v > 0]
        lo, hi = (min(vals), max(vals)) if vals else (1e-3, 1.0)
        self.lo = math.floor(math.log10(lo))
        self.hi = math.ceil(math.log10(hi))
        if self.hi == self.lo:
            self.hi += 1
        self.lo_px, self.hi_px = lo_px, hi_px

    def __call__(self, v: float) -> float:
        f = (math.log10(v) - self.lo) / (self.hi - self.lo)
        return self.lo_px + f * (self.hi_px - self.lo_px)

    def ticks(self) -> Iterable[int]:
        step = max(1, (self.hi - self.lo + 5) // 6)
        return range(self.lo, self.hi + 1, step)


def _frame(title: str, desc: str, css_class: str) -> list[str]:
    return [
        f'<svg class="chart {css_class}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{escape(title)}" width="{_W}" height="{_H}">',
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>",
        f'<rect x="0" y="0" width="{_W}" height="{_H}" fill="#fff"/>',
        f'<text x="12" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]


def _legend(lanes: Iterable[str]) -> list[str]:
    """Markers and names of the lanes present, in one row under the title."""
    out, x = [], float(_M["left"])
    for lane in [l for l in ("counter", "estimate", "simulated") if l in set(lanes)]:
        label = LANE_STYLE[lane][0]
        out.append(_marker(lane, x, 34) + f'<text x="{x + 9:.1f}" y="38" font-size="11">{escape(label)}</text>')
        x += 24 + 6.2 * len(label)
    return out


def _y_axis(axis: _LogAxis, unit: str, label: str) -> list[str]:
    out = []
    for t in axis.ticks():
        y = axis(10.0**t)
        out.append(f'<line x1="{_M["left"]}" x2="{_W - _M["right"]}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{_M["left"] - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
                   f'{escape(si(10.0**t, unit))}</text>')
    mid = (_M["top"] + _H - _M["bottom"]) / 2
    out.append(f'<text x="14" y="{mid:.0f}" font-size="12" transform="rotate(-90 14 {mid:.0f})" '
               f'text-anchor="middle">{escape(label)}</text>')
    return out


def scatter(points: list[dict], title: str, lines: list[list[dict]] | None = None, note: str = "") -> str:
    """J/token (y) against tokens/s (x), log-log, one marker per point by lane.

    Args:
        points: ``{"x", "y", "lane", "label", "href"}``; points without a positive x and y are left out.
        lines: series to connect (each a batch sweep of one energy method), in drawing order.
        note: a line under the chart (what was left out, and why).
    """
    pts = [p for p in points if p.get("x") and p.get("y") and p["x"] > 0 and p["y"] > 0]
    out = _frame(title, f"{len(pts)} results; J/token against tokens/s, both axes logarithmic", "scatter")
    if not pts:
        out.append(f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle" font-size="13">no results with both '
                   "values to plot</text></svg>")
        return "".join(out)
    xa = _LogAxis([p["x"] for p in pts], _M["left"], _W - _M["right"])
    ya = _LogAxis([p["y"] for p in pts], _H - _M["bottom"], _M["top"])
    out += _y_axis(ya, "J", "J/token (lower is better)")
    for t in xa.ticks():
        x = xa(10.0**t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_M["top"]}" y2="{_H - _M["bottom"]}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{x:.1f}" y="{_H - _M["bottom"] + 16}" font-size="11" text-anchor="middle">'
                   f'{escape(si(10.0**t, "").strip())}</text>')
    out.append(f'<text x="{(_M["left"] + _W - _M["right"]) / 2:.0f}" y="{_H - 12}" font-size="12" '
               f'text-anchor="middle">decode tokens/s (higher is faster)</text>')
    for line in lines or []:
        seg = [p for p in line if p.get("x") and p.get("y") and p["x"] > 0 and p["y"] > 0]
        if len(seg) > 1:
            colour = LANE_STYLE.get(seg[0]["lane"], ("", "#555"))[1]
            d = " ".join(f"{xa(p['x']):.1f},{ya(p['y']):.1f}" for p in seg)
            out.append(f'<polyline class="sweep" points="{d}" fill="none" stroke="{colour}" stroke-width="1.2" '
                       'stroke-dasharray="4 3"/>')
    for p in pts:
        tip = f"{p.get('label', '')}: {si(p['y'], 'J')}/token at {si(p['x'], 'tok/s')} ({p['lane']})"
        out.append(_point(p, xa(p["x"]), ya(p["y"]), tip))
    return _finish(out, pts, note)


def _point(p: dict, x: float, y: float, tip: str) -> str:
    """A point's marker with its tooltip, linked to its result page when it has one."""
    mark = _marker(p["lane"], x, y)
    mark = mark.replace("/>", f"><title>{escape(tip)}</title></{mark[1:mark.index(' ')]}>", 1)
    return f'<a href="{escape(p["href"])}">{mark}</a>' if p.get("href") else mark


def _finish(out: list[str], pts: list[dict], note: str) -> str:
    """The legend of the lanes drawn, the note under the chart, and the closing tag."""
    out += _legend(p["lane"] for p in pts)
    if note:
        out.append(f'<text x="{_M["left"]}" y="{_H - 2}" font-size="10" fill="#555">{escape(note)}</text>')
    out.append("</svg>")
    return "".join(out)


def strip(points: list[dict], title: str, note: str = "") -> str:
    """J/token (y, log) by backend (x, one column each), a marker per result by lane, measured and
    simulated results side by side but never alike.

    Args:
        points: ``{"category", "y", "lane", "label", "href"}``.
    """
    pts = [p for p in points if p.get("y") and p["y"] > 0]
    out = _frame(title, f"{len(pts)} results; J/token by backend, logarithmic", "strip")
    if not pts:
        out.append(f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle" font-size="13">no results to plot</text></svg>')
        return "".join(out)
    cats = sorted({p["category"] or "?" for p in pts})
    ya = _LogAxis([p["y"] for p in pts], _H - _M["bottom"], _M["top"])
    out += _y_axis(ya, "J", "J/token (lower is better)")
    span = (_W - _M["left"] - _M["right"]) / len(cats)
    for i, c in enumerate(cats):
        cx = _M["left"] + span * (i + 0.5)
        out.append(f'<text x="{cx:.1f}" y="{_H - _M["bottom"] + 16}" font-size="11" text-anchor="middle">'
                   f"{escape(c)}</text>")
    lanes_in = sorted({p["lane"] for p in pts}, key=lambda l: list(LANE_STYLE).index(l) if l in LANE_STYLE else 9)
    for n, p in enumerate(pts):
        i = cats.index(p["category"] or "?")
        k = lanes_in.index(p["lane"])
        # each lane its own sub-column, jittered deterministically, so the markers do not hide each other
        lane_w = span * 0.8 / len(lanes_in)
        x = _M["left"] + span * i + span * 0.1 + lane_w * (k + 0.5) + ((n * 7919) % 100 / 100 - 0.5) * lane_w * 0.6
        tip = f"{p.get('label', '')}: {si(p['y'], 'J')}/token ({p['lane']})"
        out.append(_point(p, x, ya(p["y"]), tip))
    return _finish(out, pts, note)


def series(named: dict[str, list[float]], title: str, unit: str = "J") -> str:
    """Values per repeat (x: repeat 1..n; y: linear from 0), one line of markers per named series."""
    named = {k: [v for v in vs if v is not None] for k, vs in named.items()}
    named = {k: vs for k, vs in named.items() if vs}
    out = _frame(title, "value per repeat", "repeats")
    if not named:
        out.append(f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle" font-size="13">no per-repeat values</text></svg>')
        return "".join(out)
    top = max(max(vs) for vs in named.values()) or 1.0
    n = max(len(vs) for vs in named.values())
    x0, x1, y0, y1 = _M["left"], _W - _M["right"], _H - _M["bottom"], _M["top"]

    def xs(i: int) -> float:
        return x0 + (x1 - x0) * ((i + 0.5) / n)

    def ys(v: float) -> float:
        return y0 + (y1 - y0) * (v / (top * 1.1))

    for k in range(5):
        v = top * 1.1 * k / 4
        out.append(f'<line x1="{x0}" x2="{x1}" y1="{ys(v):.1f}" y2="{ys(v):.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text x="{x0 - 6}" y="{ys(v) + 4:.1f}" font-size="11" text-anchor="end">{escape(si(v, unit))}</text>')
    for i in range(n):
        out.append(f'<text x="{xs(i):.1f}" y="{y0 + 16}" font-size="11" text-anchor="middle">{i + 1}</text>')
    out.append(f'<text x="{(x0 + x1) / 2:.0f}" y="{_H - 12}" font-size="12" text-anchor="middle">repeat</text>')
    colours = ["#1f5fbf", "#b35900", "#1b7f3a", "#7a1fbf"]
    for j, (name, vs) in enumerate(named.items()):
        c = colours[j % len(colours)]
        if len(vs) > 1:
            pts = " ".join(f"{xs(i):.1f},{ys(v):.1f}" for i, v in enumerate(vs))
            out.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="1.2"/>')
        for i, v in enumerate(vs):
            out.append(f'<circle class="pt" cx="{xs(i):.1f}" cy="{ys(v):.1f}" r="4" fill="{c}">'
                       f"<title>{escape(name)} repeat {i + 1}: {escape(si(v, unit))}/token</title></circle>")
        out.append(f'<circle cx="{x0 + 150 * j}" cy="34" r="4" fill="{c}"/>'
                   f'<text x="{x0 + 8 + 150 * j}" y="38" font-size="11">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)

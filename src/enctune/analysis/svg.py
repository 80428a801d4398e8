"""A small SVG chart writer: line, band, bar and heat-map panels with axes, ticks and a legend.

Reports and probe plots draw a handful of points each. Writing the SVG directly takes a few
milliseconds and no plotting library (importing one and rasterising three figures cost about
0.7 s of every run). The markup is plain SVG 1.1, so it renders inline in HTML and on its own.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from html import escape

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
FONT = "font-family='system-ui,-apple-system,Segoe UI,Roboto,sans-serif'"


def _n(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, s: str, size: int = 11, anchor: str = "middle", extra: str = "") -> str:
    return f"<text x='{_n(x)}' y='{_n(y)}' font-size='{size}' text-anchor='{anchor}' {extra}>{escape(str(s))}</text>"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi], about ``n`` of them (steps of 1, 2 or 5 x 10^k)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10)), key=lambda st: abs((hi - lo) / st - n))
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _label(v: float) -> str:
    return f"{v:g}" if abs(v) < 1e5 else f"{v:.0e}"


@dataclass
class Panel:
    """One set of axes. Add series, then ``render`` at a position inside a figure."""

    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None
    ylog: bool = False
    xticks: list[tuple[float, str]] | None = None
    legend: str | None = None  # a legend title, or "" for a legend without one; None: no legend
    items: list[tuple] = field(default_factory=list)

    def line(self, xs, ys, color: str, label: str | None = None, marker: bool = False, dash: bool = False) -> None:
        pts = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True) if math.isfinite(float(y))]
        self.items.append(("line", pts, color, label, marker, dash))

    def ring(self, x, y, color: str) -> None:
        """A hollow circle around one point (the evaluation a run kept, on its curve)."""
        self.items.append(("ring", [(float(x), float(y))], color))

    def band(self, xs, lo, hi, color: str) -> None:
        self.items.append(("band", [(float(x), float(a), float(b)) for x, a, b in zip(xs, lo, hi, strict=True)], color))

    def bars(self, xs, heights, width: float, color: str) -> None:
        self.items.append(("bars", [(float(x), float(h)) for x, h in zip(xs, heights, strict=True)], width, color))

    def _extent(self) -> tuple[float, float, float, float]:
        xs, ys = [], []
        for it in self.items:
            if it[0] in ("line", "ring"):
                xs += [p[0] for p in it[1]]
                ys += [p[1] for p in it[1]]
            elif it[0] == "band":
                xs += [p[0] for p in it[1]]
                ys += [v for p in it[1] for v in p[1:]]
            else:
                xs += [p[0] + s * it[2] / 2 for p in it[1] for s in (-1, 1)]
                ys += [p[1] for p in it[1] if not self.ylog or p[1] > 0] + ([] if self.ylog else [0.0])
        if self.ylog:  # whole decades, so that the smallest bar still shows
            ys = [y for y in ys if y > 0]
            ys = [10.0 ** math.floor(math.log10(min(ys))), max(ys)] if ys else ys
        x0, x1 = self.xlim or ((min(xs), max(xs)) if xs else (0.0, 1.0))
        y0, y1 = self.ylim or ((min(ys), max(ys)) if ys else (0.0, 1.0))
        if x1 <= x0:
            x0, x1 = x0 - 0.5, x1 + 0.5
        if y1 <= y0:
            y0, y1 = (y0 / 2, y1 * 2) if self.ylog else (y0 - 0.5, y1 + 0.5)
        if not self.ylim and not self.ylog:
            pad = (y1 - y0) * 0.05
            y0, y1 = y0 - pad, y1 + pad
        if not self.xlim:  # markers at the ends stay whole
            pad = (x1 - x0) * 0.02
            x0, x1 = x0 - pad, x1 + pad
        return x0, x1, y0, y1

    def render(self, left: float, top: float, width: float, height: float) -> str:
        """The panel's markup with its outer box at (left, top, width, height), room for labels included."""
        x0, x1, y0, y1 = self._extent()
        ml, mr, mt, mb = 58.0, 12.0, 26.0 if self.title else 10.0, 40.0
        pl, pt, pw, ph = left + ml, top + mt, max(width - ml - mr, 10.0), max(height - mt - mb, 10.0)
        ly0, ly1 = (math.log10(y0), math.log10(y1)) if self.ylog else (y0, y1)

        def sx(x: float) -> float:
            return pl + (x - x0) / (x1 - x0) * pw

        def sy(y: float) -> float:
            v = math.log10(max(y, 1e-300)) if self.ylog else y
            return pt + ph - (v - ly0) / (ly1 - ly0) * ph

        out = [f"<rect x='{_n(pl)}' y='{_n(pt)}' width='{_n(pw)}' height='{_n(ph)}' fill='white' stroke='#999'/>"]
        yt = [10.0 ** k for k in range(math.floor(ly0), math.ceil(ly1) + 1)] if self.ylog else nice_ticks(y0, y1)
        for v in yt:
            if y0 - 1e-12 <= v <= y1 + 1e-12:
                out.append(f"<line x1='{_n(pl)}' x2='{_n(pl + pw)}' y1='{_n(sy(v))}' y2='{_n(sy(v))}' "
                           "stroke='#ddd'/>")
                out.append(_text(pl - 5, sy(v) + 4, _label(v), 10, "end"))
        xt = self.xticks or [(v, _label(v)) for v in nice_ticks(x0, x1)]
        for v, s in xt:
            if x0 - 1e-12 <= v <= x1 + 1e-12:
                out.append(f"<line x1='{_n(sx(v))}' x2='{_n(sx(v))}' y1='{_n(pt)}' y2='{_n(pt + ph)}' stroke='#eee'/>")
                out.append(_text(sx(v), pt + ph + 14, s, 10))
        series: list[str] = []
        for it in self.items:
            if it[0] == "band" and it[1]:
                pts = [(sx(x), sy(hi)) for x, _, hi in it[1]] + [(sx(x), sy(lo)) for x, lo, _ in reversed(it[1])]
                series.append(f"<polygon points='{' '.join(f'{_n(a)},{_n(b)}' for a, b in pts)}' fill='{it[2]}' "
                           "fill-opacity='0.15' stroke='none'/>")
            elif it[0] == "bars":
                base = sy(y0) if self.ylog else sy(max(min(0.0, y1), y0))
                for x, h in it[1]:
                    if self.ylog and h <= 0:
                        continue
                    top_y = sy(h)
                    series.append(f"<rect x='{_n(sx(x - it[2] / 2))}' y='{_n(min(top_y, base))}' "
                               f"width='{_n(abs(sx(x + it[2] / 2) - sx(x - it[2] / 2)))}' "
                               f"height='{_n(abs(base - top_y))}' fill='{it[3]}' fill-opacity='0.7'/>")
        for it in self.items:
            if it[0] == "line" and it[1]:
                _, pts, color, _, marker, dash = it
                path = " ".join(f"{_n(sx(x))},{_n(sy(y))}" for x, y in pts)
                series.append(f"<polyline points='{path}' fill='none' stroke='{color}' stroke-width='1.5'"
                           + (" stroke-dasharray='5,4'" if dash else "") + "/>")
                if marker:
                    series += [f"<circle cx='{_n(sx(x))}' cy='{_n(sy(y))}' r='3' fill='{color}'/>" for x, y in pts]
            elif it[0] == "ring":
                (x, y), color = it[1][0], it[2]
                series.append(f"<circle cx='{_n(sx(x))}' cy='{_n(sy(y))}' r='7' fill='none' stroke='{color}' "
                              "stroke-width='2'/>")
        # the clip keeps series inside the axes; its id is a digest of what it clips, unique in a page
        # and the same on every render
        clip = f"clip{zlib.crc32(''.join(series).encode() + repr((left, top, width, height)).encode()):08x}"
        out.append(f"<clipPath id='{clip}'><rect x='{_n(pl)}' y='{_n(pt)}' width='{_n(pw)}' height='{_n(ph)}'/>"
                   f"</clipPath><g clip-path='url(#{clip})'>" + "".join(series) + "</g>")
        if self.title:
            out.append(_text(pl + pw / 2, top + 17, self.title, 13, extra="font-weight='600'"))
        if self.xlabel:
            out.append(_text(pl + pw / 2, pt + ph + 32, self.xlabel))
        if self.ylabel:
            cx, cy = left + 14, pt + ph / 2
            out.append(_text(cx, cy, self.ylabel, extra=f"transform='rotate(-90 {_n(cx)} {_n(cy)})'"))
        named = [(it[3], it[2], it[5]) for it in self.items if it[0] == "line" and it[3]]
        if self.legend is not None and named:
            rows = ([self.legend] if self.legend else []) + [n for n, _, _ in named]
            lw = 30 + 6.2 * max(len(r) for r in rows)
            lx, y = pl + 8, pt + 8
            out.append(f"<rect x='{_n(lx)}' y='{_n(y)}' width='{_n(lw)}' height='{_n(8 + 15 * len(rows))}' "
                       "fill='white' fill-opacity='0.85' stroke='#ccc'/>")
            y += 15
            if self.legend:
                out.append(_text(lx + 6, y, self.legend, 10, "start", "font-weight='600'"))
                y += 15
            for name, color, dash in named:
                out.append(f"<line x1='{_n(lx + 6)}' x2='{_n(lx + 22)}' y1='{_n(y - 4)}' y2='{_n(y - 4)}' "
                           f"stroke='{color}' stroke-width='2'" + (" stroke-dasharray='4,3'" if dash else "") + "/>")
                out.append(_text(lx + 26, y, name, 10, "start"))
                y += 15
        return "".join(out)


def heatmap(values: list[list[float]], text: list[list[str]], labels: list[str], title: str, xlabel: str,
            ylabel: str) -> str:
    """A square grid of cells shaded by ``values`` (0 to 1, white to blue), each with its ``text``."""
    n = len(labels)
    cell = max(14.0, min(56.0, 360.0 / max(n, 1)))
    longest = max((len(str(x)) for x in labels), default=1)
    ml, mt = 40 + min(6.5 * longest, 160), 34.0
    width = max(ml + n * cell + 16, 7.5 * len(title) + 20)
    height = mt + n * cell + 30 + min(4.6 * longest, 120)
    out = [_text(width / 2, 20, title, 13, extra="font-weight='600'")]
    for i in range(n):
        for j in range(n):
            v = min(max(float(values[i][j]), 0.0), 1.0)
            r, g, b = (round(255 + (c - 255) * v) for c in (8, 48, 107))
            x, y = ml + j * cell, mt + i * cell
            out.append(f"<rect x='{_n(x)}' y='{_n(y)}' width='{_n(cell)}' height='{_n(cell)}' "
                       f"fill='rgb({r},{g},{b})' stroke='white'/>")
            if cell >= 18:
                out.append(_text(x + cell / 2, y + cell / 2 + 4, text[i][j], 10,
                                 extra=f"fill='{'white' if v > 0.6 else 'black'}'"))
    for k, name in enumerate(labels):
        out.append(_text(ml - 6, mt + k * cell + cell / 2 + 4, name, 10, "end"))
        x, y = ml + k * cell + cell / 2, mt + n * cell + 8
        out.append(_text(x, y, name, 10, "end", f"transform='rotate(-45 {_n(x)} {_n(y)})'"))
    out.append(_text(ml + n * cell / 2, height - 6, xlabel))
    out.append(_text(12, mt + n * cell / 2, ylabel, extra=f"transform='rotate(-90 12 {_n(mt + n * cell / 2)})'"))
    return _svg(width, height, out)


def figure(panels: list[tuple[Panel, float, float, float, float]], width: float, height: float) -> str:
    """Panels laid out at (left, top, width, height) in a ``width`` x ``height`` SVG."""
    return _svg(width, height, [p.render(*box) for p, *box in panels])


def _svg(width: float, height: float, body: list[str]) -> str:
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{_n(width)}' height='{_n(height)}' "
            f"viewBox='0 0 {_n(width)} {_n(height)}' {FONT}>" + "".join(body) + "</svg>")

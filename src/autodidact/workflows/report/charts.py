"""Line charts as inline SVG: no script, no library, readable in any browser and offline.

One chart is a few lines of data over training steps (one line per run when runs are compared),
with axes, five ticks each, a legend, and a <title> per line so hovering names it.
"""

import math
from html import escape

# Colour-blind-safe (Okabe and Ito, 2008): one colour per run, in the order the runs were given.
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")

WIDTH, PLOT_HEIGHT = 440, 192
LEFT, RIGHT, TOP, BOTTOM = 58, 12, 28, 40
LEGEND_COLUMNS, LEGEND_ROW = 4, 14  # legend entries sit in rows above the plot, never over the lines


def nice_ticks(lo, hi, count=5):
    """Round tick values covering [lo, hi] in about `count` steps of 1, 2 or 5 times a power of 10."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        lo, hi = lo - 0.5 if lo == 0 else lo - abs(lo) * 0.1, hi + 0.5 if hi == 0 else hi + abs(hi) * 0.1
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    value = first
    while value < hi + step * 0.999:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _label(value):
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.0e}"
    if abs(value) >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:.3g}"


def line_chart(title, series, y_label="", y_range=None):
    """An SVG chart of `series`: [(name, steps, values)], one line each, colours by position.

    `y_range` fixes the y axis (success rates: 0 to 1); otherwise it spans the data. Non-finite
    values (a diverged loss) are left out of the line rather than breaking the axis.
    """
    points = [[(x, y) for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y)] for _, xs, ys in series]
    all_x = [x for line in points for x, _ in line] or [0.0, 1.0]
    all_y = [y for line in points for _, y in line] or [0.0, 1.0]
    x_ticks = nice_ticks(min(all_x), max(all_x))
    y_ticks = nice_ticks(*(y_range or (min(all_y), max(all_y))))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]
    legend_rows = math.ceil(len(series) / LEGEND_COLUMNS) if len(series) > 1 else 0
    top = TOP + (LEGEND_ROW * legend_rows + 6 if legend_rows else 0)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, PLOT_HEIGHT
    height = top + plot_h + BOTTOM

    def px(x):
        return LEFT + (x - x0) / ((x1 - x0) or 1) * plot_w

    def py(y):
        return top + plot_h - (y - y0) / ((y1 - y0) or 1) * plot_h

    out = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
           f'width="{WIDTH}" height="{height}" role="img" aria-label="{escape(title)}">',
           f'<text x="{LEFT}" y="16" class="chart-title">{escape(title)}</text>']
    for t in y_ticks:
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py(t):.1f}" y2="{py(t):.1f}" class="grid"/>'
                   f'<text x="{LEFT - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{_label(t)}</text>')
    for t in x_ticks:
        out.append(f'<text x="{px(t):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{_label(t)}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{height - 6}" text-anchor="middle">step</text>')
    if y_label:
        out.append(f'<text transform="translate(12 {top + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle">'
                   f'{escape(y_label)}</text>')
    out.append(f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{plot_h}" class="frame"/>')
    for k, ((name, _, _), line) in enumerate(zip(series, points)):
        color = COLORS[k % len(COLORS)]
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in line)
        if len(line) == 1:  # one evaluation: a dot, since a line needs two points
            x, y = line[0]
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{color}"><title>{escape(name)}'
                       '</title></circle>')
        elif line:
            out.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2">'
                       f'<title>{escape(name)}</title></polyline>')
    column_w = plot_w / LEGEND_COLUMNS
    for k, (name, _, _) in enumerate(series if legend_rows else ()):
        row, col = divmod(k, LEGEND_COLUMNS)
        x, y = LEFT + col * column_w, TOP + 4 + LEGEND_ROW * row
        out.append(f'<rect x="{x:.0f}" y="{y - 9}" width="10" height="10" fill="{COLORS[k % len(COLORS)]}"/>'
                   f'<text x="{x + 14:.0f}" y="{y}">{escape(name[:14])}</text>')
    out.append("</svg>")
    return "".join(out)

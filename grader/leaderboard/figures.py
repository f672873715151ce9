"""The leaderboard's figures, drawn with matplotlib and returned as PNG bytes.

Figures are built on :class:`matplotlib.figure.Figure` (no pyplot state) and saved
without the "Software" metadata, so the same data give the same bytes. Labels
are drawn with ``parse_math=False``: a team called ``$\\frac{`` is text, not TeX.
"""
from __future__ import annotations

import io
import warnings

import numpy as np

TEAM_COLOUR = "#1f5fa8"
BASELINE_COLOUR = "#8a8a8a"
SELECTED_COLOUR = "#d1495b"
DPI = 100


def _png(fig) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # Exotic characters in team names: a missing glyph is drawn as a box, not an error.
        warnings.simplefilter("ignore", UserWarning)
        # zlib level 3 rather than 6: a tenth larger, a fifth faster to write (the live board redraws every figure).
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 3})
    return buf.getvalue()


def _span(values, pad: float = 0.03) -> tuple:
    """Axis limits around ``values`` (scores in [0, 1]), padded, never beyond [0, 1] plus the pad.

    Values beyond 1 (a distance in pixels, when a board ranks by HD95) scale the pad and the upper limit.
    """
    if not values:
        return (0.0, 1.0)
    top = max(1.0, max(values))
    pad *= top
    lo, hi = max(0.0, min(values) - pad), min(top, max(values) + pad)
    return (lo - pad, hi + pad) if hi - lo < 0.1 * top else (lo, hi + pad / 2)


def _figure(width: float, height: float, left: float = 0.8, bottom: float = 0.55, top: float = 0.15):
    """A figure with fixed margins in inches (a layout engine would draw every figure twice)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - 0.25 / width, bottom=bottom / height, top=1 - top / height)
    return fig


def _short(label: str, limit: int = 32) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "\u2026"


def whiskers_png(rows, score_label: str) -> bytes:
    """Each board row's score as a dot with its 95% interval, in board order (best on top).

    ``rows``: dicts with ``label``, ``kind`` ("team"/"baseline"), ``dice``, ``dice_lo``, ``dice_hi``
    (the interval may be None when no bootstrap was run).
    """
    n = len(rows)
    labels = [_short(r["label"]) for r in rows]
    # About 0.062 inch per character at 8 points, for the tick labels on the left.
    left = 0.25 + 0.062 * max((len(x) for x in labels), default=4)
    fig = _figure(7.5 + left, max(2.2, 0.24 * n + 0.9), left=left)
    ax = fig.add_subplot()
    pos = np.arange(n)[::-1]
    for kind, colour, marker in (("team", TEAM_COLOUR, "o"), ("baseline", BASELINE_COLOUR, "D")):
        sel = [i for i, r in enumerate(rows) if r["kind"] == kind]
        with_ci = [i for i in sel if rows[i].get("dice_lo") is not None]
        if with_ci:
            ax.hlines(pos[with_ci], [rows[i]["dice_lo"] for i in with_ci], [rows[i]["dice_hi"] for i in with_ci],
                      color=colour, lw=1.6)
        if sel:
            ax.plot([rows[i]["dice"] for i in sel], pos[sel], ls="none", marker=marker, color=colour, ms=5)
    ax.set_yticks(pos, labels, parse_math=False, fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlim(*_span([v for r in rows for v in (r["dice"], r.get("dice_lo"), r.get("dice_hi")) if v is not None]))
    ax.set_xlabel(score_label + " (dot) and 95% bootstrap interval (bar); grey: baselines")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


#: Teams drawn each in its own colour and line style, with a legend; a larger class shows its top ones so.
MAX_NAMED = 20
TOP_K = 10
OTHER_COLOUR = "#c8c8c8"
_STYLES = ("-", "--", ":", "-.")


def team_styles(n: int) -> list:
    """``(colour, line style)`` of the ``n`` named teams: a qualitative palette, then the next line style."""
    from matplotlib import colormaps

    palette = colormaps["tab10"].colors
    return [(palette[i % len(palette)], _STYLES[(i // len(palette)) % len(_STYLES)]) for i in range(n)]


def _board_order(histories, lower_is_better: bool = False) -> list:
    """Team indices best first: by the score on the board (the starred one), else the best; none last."""
    sign, best = (1, min) if lower_is_better else (-1, max)

    def key(i):
        _, scores, selected = histories[i]
        if not len(scores):
            return (1, 0.0, i)
        return (0, sign * (scores[selected] if selected is not None else best(scores)), i)

    return sorted(range(len(histories)), key=key)


#: Tick formats of the time axis per tick spacing (years, months, days, hours, minutes, seconds), and at the
#: spacing's zero (midnight, the first of a month...): every label says what it is, never a bare "20" that may
#: be a day, a minute or a second (matplotlib's own formats write seconds and days as bare numbers).
TIME_FORMATS = ("%Y", "%b %Y", "%d %b", "%H:%M", "%H:%M", "%H:%M:%S")
TIME_ZERO_FORMATS = ("%Y", "%b %Y", "%b %Y", "%d %b", "%H:%M", "%H:%M")


def time_axis(axis, times) -> str:
    """Put readable date ticks on ``axis`` (UTC) and return the dates ``times`` span, for the axis title.

    The formatter draws no offset text (the date matplotlib writes in the corner collides with the
    axis title): the span goes into the title instead.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> from matplotlib.figure import Figure
    >>> ax = Figure().add_subplot()
    >>> t = [datetime(2026, 11, 2, 10, 38, tzinfo=timezone.utc), datetime(2026, 11, 4, 9, tzinfo=timezone.utc)]
    >>> time_axis(ax.xaxis, t)
    '2 Nov - 4 Nov 2026'
    >>> time_axis(ax.xaxis, t[:1])
    '2 Nov 2026'
    """
    import matplotlib.dates as mdates
    from datetime import timezone

    locator = mdates.AutoDateLocator(minticks=3, maxticks=8, tz=timezone.utc)
    axis.set_major_locator(locator)
    axis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=timezone.utc, formats=list(TIME_FORMATS),
                                                         zero_formats=list(TIME_ZERO_FORMATS), show_offset=False))
    if not times:
        return ""
    first, last = (t.astimezone(timezone.utc) for t in (min(times), max(times)))
    day = "{0.day} {0:%b}".format
    if first.date() == last.date():
        return f"{day(first)} {first.year}"
    return f"{day(first)} - {day(last)} {last.year}" if first.year == last.year else \
        f"{day(first)} {first.year} - {day(last)} {last.year}"


def history_png(histories, score_label: str, labels=None, *, max_named: int = MAX_NAMED, top_k: int = TOP_K,
                lower_is_better: bool = False) -> bytes:
    """The PNG of :func:`history_figure`."""
    return _png(history_figure(histories, score_label, labels, max_named=max_named, top_k=top_k,
                               lower_is_better=lower_is_better))


def history_figure(histories, score_label: str, labels=None, *, max_named: int = MAX_NAMED, top_k: int = TOP_K,
                   lower_is_better: bool = False):
    """Every team's valid submissions over time, one line per team that a reader can follow.

    Up to ``max_named`` teams each get a colour of a qualitative palette (cycling
    through line styles past ten) and a legend entry, best first; in a larger class
    the ``top_k`` best teams are drawn so and the others in light grey behind them.
    Each team's submission on the board is a star of its colour.

    Parameters
    ----------
    histories : list of (times, scores, selected index or None)
        Per team, times as aware datetimes.
    score_label : str
    labels : list of str, optional
        The teams' display names, in the order of ``histories`` (no legend without them).
    lower_is_better : bool
        The score is a distance (a board ranked by HD95): the best teams are the lowest.
    """
    import matplotlib.dates as mdates

    order = [i for i in _board_order(histories, lower_is_better) if len(histories[i][0])]
    named = order if len(order) <= max_named else order[:top_k]
    others = [i for i in order if i not in set(named)]
    legend_rows = 0
    if labels is not None and named:
        ncol = 4
        legend_rows = -(-(len(named) + (1 if others else 0)) // ncol)
    bottom = 0.55 + (0.2 + 0.17 * legend_rows if legend_rows else 0)
    height = 3.6 + bottom - 0.55
    fig = _figure(7.5, height, bottom=bottom)
    ax = fig.add_subplot()
    if others:
        # One line for all the others (NaN breaks it between teams): 300 teams draw as fast as one.
        xs, ys, star_x, star_y = [], [], [], []
        for i in others:
            times, scores, selected = histories[i]
            x = mdates.date2num(times)
            xs += [*x, np.nan]
            ys += [*scores, np.nan]
            if selected is not None:
                star_x.append(x[selected])
                star_y.append(scores[selected])
        ax.plot(xs, ys, color=OTHER_COLOUR, lw=0.8, marker="o", ms=2, zorder=1,
                label=f"{len(others)} other teams")
        ax.plot(star_x, star_y, color=OTHER_COLOUR, marker="*", ms=8, ls="none", zorder=1)
    for rank, (i, (colour, style)) in enumerate(zip(named, team_styles(len(named))), start=1):
        times, scores, selected = histories[i]
        x = mdates.date2num(times)
        label = f"{rank}. {_short(labels[i], 22)}" if labels is not None else None
        ax.plot(x, scores, color=colour, ls=style, lw=1.3, marker="o", ms=3, label=label, zorder=3)
        if selected is not None:
            ax.plot([x[selected]], [scores[selected]], color=colour, marker="*", ms=11, mec="black", mew=0.6,
                    ls="none", zorder=4)
    span = time_axis(ax.xaxis, [t for times, _, _ in histories for t in times])
    ax.set_ylim(*_span([v for _, scores, _ in histories for v in scores]))
    ax.set_xlabel(f"submitted{', ' + span if span else ''} (UTC); star: the submission on the board")
    ax.set_ylabel(score_label)
    ax.grid(alpha=0.3)
    if legend_rows:
        handles, texts = ax.get_legend_handles_labels()
        if others:  # the grey teams last, after the named ones in board order
            handles, texts = handles[1:] + handles[:1], texts[1:] + texts[:1]
        legend = ax.legend(handles, texts, loc="upper left", ncol=4,
                           bbox_to_anchor=(-0.7 / (7.5 - 0.8 - 0.25), -0.5 / (height - bottom - 0.15)),
                           fontsize=7, frameon=False, handlelength=2.6, columnspacing=1.0,
                           bbox_transform=ax.transAxes)
        for text in legend.get_texts():
            text.set_parse_math(False)  # a team called "$\\frac{" is text
    return fig


#: The baselines' labels above the distribution: font size and the leader's rise (points), gap (pixels).
LABEL_SIZE, LABEL_RISE, LABEL_GAP = 7, 10, 2


def dodge(centres, widths, left: float, right: float, gap: float = LABEL_GAP) -> list:
    """Centres near ``centres`` at which labels of ``widths`` (pixels) keep ``gap`` apart within ``[left, right]``.

    The labels keep their order (so leader lines from each centre to its label never cross):
    a pass left to right pushes each label clear of the one before, a pass right to left
    pulls the last ones back inside ``right``.

    Examples
    --------
    >>> dodge([100, 102, 300], [10, 10, 10], 0, 400)
    [100.0, 112.0, 300.0]
    >>> dodge([398, 399], [10, 10], 0, 400)
    [383.0, 395.0]
    """
    order = sorted(range(len(centres)), key=lambda k: centres[k])
    out = [0.0] * len(centres)
    prev = None
    for k in order:
        low = left + widths[k] / 2 if prev is None else out[prev] + (widths[prev] + widths[k]) / 2 + gap
        out[k], prev = float(max(centres[k], low)), k
    nxt = None
    for k in reversed(order):
        high = right - widths[k] / 2 if nxt is None else out[nxt] - (widths[nxt] + widths[k]) / 2 - gap
        out[k], nxt = float(min(out[k], high)), k
    return out


def distribution_png(all_scores, selected_scores, baselines, score_label: str) -> bytes:
    """The PNG of :func:`distribution_figure`."""
    return _png(distribution_figure(all_scores, selected_scores, baselines, score_label))


def distribution_figure(all_scores, selected_scores, baselines, score_label: str):
    """Histogram of every valid submission's score and of the selected ones; baselines as lines.

    The axis spans the scores and the baselines (padded), not all of [0, 1]: a class whose
    scores all lie near 0.94 shows their spread. The baselines' labels stand upright above the
    axes, moved apart where lines are close (:func:`dodge`), each with a leader to its line.

    ``baselines``: list of ``(label, score)``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.ticker import MaxNLocator

    finite = [float(v) for v in (*all_scores, *selected_scores, *(b for _, b in baselines)) if np.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
    pad = max(0.01, 0.05 * (hi - lo))
    # Scores in [0, 1] stay within it; a distance (a board ranked by HD95) is bounded below only.
    lo, hi = max(0.0, lo - pad), min(max(1.0, hi), hi + pad)
    width, left, right, height = 7.5, 0.8, 0.25, 3.0
    fig = _figure(width, height)
    FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    texts = [_short(label, 24) for label, _ in baselines]
    extents = []
    for text in texts:  # measured before placing: an upright label's width and height in pixels
        probe = fig.text(0, 0, text, fontsize=LABEL_SIZE, rotation=90, parse_math=False)
        box = probe.get_window_extent(renderer)
        extents.append((box.width, box.height))
        probe.remove()
    x0, x1 = left * DPI, (width - right) * DPI
    centres = [x0 + (score - lo) / (hi - lo) * (x1 - x0) for _, score in baselines]
    placed = dodge(centres, [w for w, _ in extents], x0, x1)
    # Above the axes: the leaders' rise and the upright labels, then the legend's row.
    band = (LABEL_RISE + 2) / 72 + max((h for _, h in extents), default=0) / DPI if baselines else 0
    top = 0.1 + band + 0.3
    fig.set_size_inches(width, height + top)
    fig.subplots_adjust(top=1 - top / (height + top), bottom=0.55 / (height + top))
    ax = fig.add_subplot()
    bins = np.linspace(lo, hi, 41)
    ax.hist(all_scores, bins=bins, color=TEAM_COLOUR, alpha=0.3, label="all valid submissions")
    ax.hist(selected_scores, bins=bins, color=TEAM_COLOUR, alpha=0.9, label="submissions on the board")
    for (label, score), text, c, centre in zip(baselines, texts, placed, centres):
        ax.axvline(score, color=BASELINE_COLOUR, ls="--", lw=1)
        note = ax.annotate(text, xy=(score, 1.0), xycoords=ax.get_xaxis_transform(),
                           xytext=((c - centre) * 72 / DPI, LABEL_RISE), textcoords="offset points",
                           rotation=90, ha="center", va="bottom", fontsize=LABEL_SIZE, color="#555555",
                           annotation_clip=False,
                           arrowprops=dict(arrowstyle="-", color=BASELINE_COLOUR, lw=0.6, shrinkA=0, shrinkB=0,
                                           relpos=(0.5, 0.0)))
        note.set_parse_math(False)
        note.set_gid("baseline-label")
    ax.set_xlim(lo, hi)
    ax.set_xlabel(score_label + ("; dashed: baselines" if baselines else ""))
    ax.set_ylabel("submissions")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.legend(*ax.get_legend_handles_labels(), loc="upper left", bbox_to_anchor=(left / width, 1.0), ncol=2,
               fontsize=8, frameon=False, borderaxespad=0.1)
    return fig

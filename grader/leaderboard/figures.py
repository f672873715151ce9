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
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _span(values, pad: float = 0.03) -> tuple:
    """Axis limits around ``values`` (scores in [0, 1]), padded, never beyond [0, 1] plus the pad."""
    if not values:
        return (0.0, 1.0)
    lo, hi = max(0.0, min(values) - pad), min(1.0, max(values) + pad)
    return (lo - pad, hi + pad) if hi - lo < 0.1 else (lo, hi + pad / 2)


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


def _board_order(histories) -> list:
    """Team indices best first: by the score on the board (the starred one), else the best; none last."""
    def key(i):
        _, scores, selected = histories[i]
        if not len(scores):
            return (1, 0.0, i)
        return (0, -(scores[selected] if selected is not None else max(scores)), i)

    return sorted(range(len(histories)), key=key)


def history_png(histories, score_label: str, labels=None, *, max_named: int = MAX_NAMED, top_k: int = TOP_K) -> bytes:
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
    """
    import matplotlib.dates as mdates

    order = [i for i in _board_order(histories) if len(histories[i][0])]
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
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_ylim(*_span([v for _, scores, _ in histories for v in scores]))
    ax.set_xlabel("submitted (UTC); star: the submission on the board")
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
    return _png(fig)


def distribution_png(all_scores, selected_scores, baselines, score_label: str) -> bytes:
    """Histogram of every valid submission's score and of the selected ones; baselines as lines.

    ``baselines``: list of ``(label, score)``.
    """
    fig = _figure(7.5, 3.4, top=0.4)
    ax = fig.add_subplot()
    bins = np.linspace(0, 1, 41)
    ax.hist(all_scores, bins=bins, color=TEAM_COLOUR, alpha=0.3, label="all valid submissions")
    ax.hist(selected_scores, bins=bins, color=TEAM_COLOUR, alpha=0.9, label="submissions on the board")
    for label, score in baselines:
        ax.axvline(score, color=BASELINE_COLOUR, ls="--", lw=1)
        ax.text(score, 0.98, _short(label, 24), transform=ax.get_xaxis_transform(), rotation=90, va="top", ha="right",
                fontsize=7, color="#555555", parse_math=False)
    ax.set_xlim(0, 1)
    ax.set_xlabel(score_label + "; dashed: baselines")
    ax.set_ylabel("submissions")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, fontsize=8, frameon=False)
    return _png(fig)

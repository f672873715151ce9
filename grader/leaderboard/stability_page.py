"""The site's "ranking stability" page (``stability.html``): challengeR's figures of :mod:`.stability`.

Self-contained like ``index.html`` (inline style, ``data:`` figures), with no script
at all, and laid out for a phone: one column, figures scaled to the screen width,
the table in a horizontal scroller.
"""
from __future__ import annotations

import numpy as np

from . import figures
from .render import FIGURE_CSS, _img, h
from .stability import Stability

PAGE = "stability.html"
#: No script, nothing from elsewhere: only the inline style and the figures.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto; max-width: 60em;
       padding: 0 0.8em; color: #1d1d1f; line-height: 1.4; }
""" + FIGURE_CSS + """
table { border-collapse: collapse; font-size: 0.9em; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.scroll { overflow-x: auto; max-width: 100%; }
h1, h2, p, td { overflow-wrap: anywhere; }
"""


def tau_png(tau) -> bytes:
    """Kendall's tau of every resample: a violin with a box inside (drawn upright, every matplotlib's default)."""
    tau = np.asarray(tau, dtype=np.float64)
    tau = tau[~np.isnan(tau)]
    fig = figures._figure(3.6, 3.4, left=0.6, bottom=0.3)
    ax = fig.add_subplot()
    if tau.size:
        if np.ptp(tau) > 0:
            ax.violinplot(tau, showextrema=False)
        ax.boxplot(tau, widths=0.25, showfliers=False)
    ax.set_xticks([])
    ax.set_ylim(min(0.0, float(tau.min()) - 0.05) if tau.size else 0.0, 1.02)
    ax.set_ylabel("Kendall's tau, full vs bootstrap ranking", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return figures._png(fig)


def blob_png(stab: Stability) -> bytes:
    """How often each of the shown teams takes each rank (area), its median rank (x) and 95% interval (bar)."""
    k = stab.shown
    labels = [figures._short(lab, 20) for lab in stab.labels[:k]]
    top = int(max(stab.high[:k].max(), k)) if k else 1
    fig = figures._figure(max(4.0, 0.32 * k + 1.2), max(3.0, 0.22 * top + 1.4), left=0.6,
                          bottom=0.25 + 0.065 * max((len(x) for x in labels), default=4))
    ax = fig.add_subplot()
    share = stab.frequencies[:k, :top] / max(1, stab.frequencies[0].sum())
    xs, ys = np.nonzero(share)
    ax.scatter(xs, ys + 1, s=400 * share[xs, ys], color=figures.TEAM_COLOUR, alpha=0.6, linewidths=0)
    ax.vlines(np.arange(k), stab.low[:k], stab.high[:k], color="black", lw=1)
    ax.plot(np.arange(k), stab.median[:k], ls="none", marker="x", color="black", ms=5)
    ax.set_xticks(np.arange(k), labels, rotation=90, parse_math=False, fontsize=8)
    ax.set_xlim(-0.7, k - 0.3)
    ax.set_ylim(top + 0.7, 0.3)
    ax.set_ylabel("rank in the bootstrap resamples")
    ax.grid(alpha=0.3)
    return figures._png(fig)


def significance_png(stab: Stability) -> bytes:
    """The map: a dark cell when the row team is significantly better than the column team."""
    k = stab.shown
    labels = [figures._short(lab, 20) for lab in stab.labels[:k]]
    margin = 0.25 + 0.065 * max((len(x) for x in labels), default=4)
    side = max(2.5, 0.28 * k)
    fig = figures._figure(side + margin + 0.3, side + margin + 0.5, left=margin, bottom=margin + 0.3)
    ax = fig.add_subplot()
    ax.imshow(stab.better[:k, :k], cmap="Blues", vmin=-0.3, vmax=1.2, aspect="equal", interpolation="nearest")
    ax.set_xticks(np.arange(k), labels, rotation=90, parse_math=False, fontsize=7)
    ax.set_yticks(np.arange(k), labels, parse_math=False, fontsize=7)
    ax.set_xlabel("dark: the row team is significantly better than this one", fontsize=8)
    return figures._png(fig)


def stability_html(title: str, phase: str, n_cases: int, n_boot: int, stab, method: str, notes=()) -> str:
    """The page; ``stab`` None when there is nothing to analyse (no bootstrap, or fewer than two teams).

    ``notes`` and ``method`` are the board's own (``index.html`` shows the same).
    """
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{h(title)}: ranking stability</title>", f"<style>{_STYLE}</style>", "</head>",
           f'<body data-phase="{h(phase)}">', f"<h1>{h(title)}: ranking stability</h1>",
           '<p><a href="index.html">Back to the leaderboard</a></p>',
           f"<p>How much the ranking on the {n_cases} {h(phase)} test cases depends on which cases were drawn: "
           f"{n_boot} bootstrap resamples of the cases, the same ones as the board's intervals.</p>"]
    if notes:
        out.append('<ul class="notes">' + "".join(f"<li>{h(n)}</li>" for n in notes) + "</ul>")
    if stab is None:
        out.append("<p>Nothing to analyse: it takes a bootstrap (--bootstrap above 0) and at least two ranked "
                   "teams.</p>")
    else:
        tau = stab.tau[~np.isnan(stab.tau)]
        summary = (f"median {np.median(tau):.3f}, 95% of resamples above {np.quantile(tau, 0.05):.3f}"
                   if tau.size else "undefined (every resample ranks all teams level)")
        shown = "" if stab.shown == len(stab.labels) else f" (the best {stab.shown} teams)"
        out += ["<h2>Kendall's tau</h2>", f"<p>Kendall's tau (tau-b): {summary}.</p>",
                _img(tau_png(stab.tau), "Kendall's tau of each bootstrap ranking"),
                f"<h2>Rank frequencies{shown}</h2>",
                "<p>Blob area: how often the team takes that rank; cross: median rank; bar: 95% interval.</p>",
                _img(blob_png(stab), "how often each team takes each rank"),
                f"<h2>Significance map{shown}</h2>",
                "<p>Dark: the row team beats the column team (one-sided Wilcoxon signed-rank test on the per-case "
                "scores, Holm-adjusted over all the pairs shown, adjusted p &lt; 0.05).</p>",
                _img(significance_png(stab), "significance map"),
                "<h2>Ranks</h2>", '<div class="scroll"><table><thead><tr><th>Rank</th><th>Team</th>'
                "<th>Median bootstrap rank</th><th>95% interval</th><th>Resamples at its rank</th>"
                "</tr></thead><tbody>"]
        total = max(1, int(stab.frequencies[0].sum()))
        for i, label in enumerate(stab.labels):
            at_rank = stab.frequencies[i, i] / total
            out.append(f'<tr><td class="num">{i + 1}</td><td>{h(label)}</td><td class="num">{stab.median[i]:g}</td>'
                       f'<td class="num">{stab.low[i]}\u2013{stab.high[i]}</td><td class="num">{at_rank:.1%}</td></tr>')
        out.append("</tbody></table></div>")
    out += [f"<footer><p>{h(method)}</p></footer>", "</body>", "</html>"]
    return "\n".join(out) + "\n"


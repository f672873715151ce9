"""The leaderboard as text: ``leaderboard.csv``, ``grades.csv``, ``leaderboard.md`` and ``index.html``.

Everything a user controls (team and file names, error messages) is cleaned of
control characters (:func:`~grader.leaderboard.collect.clean_text`), then escaped
for each format: HTML entities, Markdown punctuation, and a leading quote before
a CSV text cell that a spreadsheet would take for a formula (``= + - @``, tab, CR;
OWASP's advice). Numbers are written by the kit and never prefixed.

The page is self-contained: inline CSS, one inline script allowed by its hash in
the Content-Security-Policy (so an injected script could not run even if escaping
failed), and figures as ``data:`` PNGs. Nothing in it depends on the clock.
"""
from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import math
import re

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#!|~])")


def csv_cell(value) -> str:
    """One CSV cell: numbers as they are, text guarded against formula injection."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool,)):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(records, columns) -> str:
    """CSV text (``\\n`` line ends) of ``records`` (dicts) with the given ``(key, header)`` columns."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([header for _, header in columns])
    for rec in records:
        writer.writerow([csv_cell(rec.get(key)) for key, _ in columns])
    return buf.getvalue()


def md_text(text) -> str:
    """User text safe in a Markdown table cell: Markdown punctuation backslash-escaped, ``< > &`` as entities."""
    return html.escape(_MD_SPECIAL.sub(r"\\\1", str(text)), quote=False)


def h(text) -> str:
    """HTML-escaped text (quotes included, so it is safe in attributes too)."""
    return html.escape(str(text), quote=True)


def fmt(value, decimals: int) -> str:
    return "" if value is None else f"{value:.{decimals}f}"


def fmt_move(move) -> str:
    if move is None:
        return ""
    return f"+{move}" if move > 0 else ("0" if move == 0 else f"\u2212{-move}")


def interval(lo, hi, decimals: int) -> str:
    return "" if lo is None else f"[{lo:.{decimals}f}, {hi:.{decimals}f}]"


def rank_range(lo, hi) -> str:
    return "" if lo is None else (f"{lo}" if lo == hi else f"{lo}\u2013{hi}")


# ----------------------------------------------------------------------------- CSV


def board_columns(report) -> list:
    """``(key, header)`` of ``leaderboard.csv`` for this phase."""
    p, sn = report["phase"], report.get("score_name", "dice")
    cols = [("rank", "rank"), ("tied", "tied_with_above"), ("p_vs_above", "p_vs_above_holm")]
    if report["revealed"]:
        cols += [("move", "move"), ("public_rank", "public_rank")]
    cols += [
        ("label", "team"), ("kind", "kind"),
        ("dice", f"{p}_{sn}"), ("dice_lo", f"{p}_{sn}_ci_low"), ("dice_hi", f"{p}_{sn}_ci_high"),
        ("rank_lo", "rank_ci_low"), ("rank_hi", "rank_ci_high"), ("f1", f"{p}_pixel_f1"),
    ]
    cols += [(c.name, f"{p}_{c.name}") for c in report.get("extra", ())]
    if report["revealed"]:
        cols += [("public_dice", f"public_{sn}"), ("public_f1", "public_pixel_f1")]
    cols += [
        ("submission", "submission"), ("submitted_at", "submitted_at"), ("selected_by", "selected_by"),
        ("n_valid", "valid_submissions"), ("n_invalid", "invalid_submissions"), ("n_over_quota", "over_quota"),
    ]
    return cols


def grade_columns(report) -> list:
    sn = report.get("score_name", "dice")
    cols = [("label", "team"), ("status", "status"), ("submission", "submission"), ("submitted_at", "submitted_at"),
            ("public_dice", f"public_{sn}"), ("public_f1", "public_pixel_f1"), ("public_rank", "public_rank")]
    if report["revealed"]:
        cols += [("dice", f"private_{sn}"), ("f1", "private_pixel_f1"), ("rank", "private_rank"), ("move", "move")]
    return cols


def _rounded(rec: dict, decimals: int, extra=()) -> dict:
    out = dict(rec)
    for key in ("dice", "dice_lo", "dice_hi", "f1", "public_dice", "public_f1"):
        if out.get(key) is not None:
            # Pixel F1 keeps its 4 decimals on a board ranked by a distance (2 decimals).
            out[key] = round(float(out[key]), max(decimals, 4) if key.endswith("f1") else decimals)
    for col in extra:
        if out.get(col.name) is not None:
            out[col.name] = round(float(out[col.name]), col.precision)
    if out.get("p_vs_above") is not None:
        out["p_vs_above"] = float(f"{out['p_vs_above']:.4g}")
    if out.get("kind") == "baseline":
        out["tied"] = None
    return out


def leaderboard_csv(report) -> str:
    d = report["decimals"]
    return to_csv([_rounded(r, d, report.get("extra", ())) for r in report["rows"]], board_columns(report))


def grades_csv(report) -> str:
    d = report["decimals"]
    return to_csv([_rounded(r, d) for r in report["grades"]], grade_columns(report))


# ----------------------------------------------------------------------------- Markdown


#: Board cells whose text comes from users (folder and file names).
_USER_CELLS = ("team", "submission")


def _md_table(headers, rows) -> list:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _display_cells(report, r) -> dict:
    """The board's cells as display text (not escaped)."""
    d = report["decimals"]
    base = r["kind"] == "baseline"
    return {
        "rank": "\u2014" if base else str(r["rank"]),
        "tied": "=" if r.get("tied") and not base else "",
        "move": "" if base else fmt_move(r.get("move")),
        "public_rank": "" if base else str(r.get("public_rank", "")),
        "team": r["label"] + (" (baseline)" if base else ""),
        "dice": fmt(r["dice"], d),
        "ci": interval(r.get("dice_lo"), r.get("dice_hi"), d),
        "rank_ci": "" if base else rank_range(r.get("rank_lo"), r.get("rank_hi")),
        "f1": fmt(r["f1"], max(d, 4)),
        "public_dice": fmt(r.get("public_dice"), d),
        "submission": r["submission"],
        "submitted_at": r["submitted_at"],
        "n": "" if base else f"{r['n_valid']} / {r['n_invalid']} / {r['n_over_quota']}",
        **{c.name: fmt(r.get(c.name), c.precision) for c in report.get("extra", ())},
    }


def _board_headers(report) -> list:
    """``(cell key, header, sort type, sort key)`` of the displayed board."""
    p, st = report["phase"], report.get("score_title", "Dice")
    cols = [("rank", "Rank", "num", "rank"), ("tied", "Tie", "text", "tied")]
    if report["revealed"]:
        cols += [("move", "Move", "num", "move"), ("public_rank", "Public rank", "num", "public_rank")]
    cols += [
        ("team", "Team", "text", "team"), ("dice", f"{st} ({p})", "num", "dice"),
        ("ci", "95% interval", "num", "ci"), ("rank_ci", "Rank 95% interval", "num", "rank_ci"),
        ("f1", f"Pixel F1 ({p})", "num", "f1"),
    ]
    cols += [(c.name, f"{c.title} ({p})", "num", c.name) for c in report.get("extra", ())]
    if report["revealed"]:
        cols += [("public_dice", f"{st} (public)", "num", "public_dice")]
    cols += [
        ("submission", "Submission", "text", "submission"), ("submitted_at", "Submitted (UTC)", "text", "submitted"),
        ("n", "Valid / invalid / over quota", "num", "n"),
    ]
    return cols


def leaderboard_md(report) -> str:
    cols = _board_headers(report)
    lines = [f"# {html.escape(report['title'], quote=False)}", "", report["subtitle"], ""]
    lines += [f"- {n}" for n in report["notes"]]  # the kit's own sentences
    if report["notes"]:
        lines.append("")
    cells = [_display_cells(report, r) for r in report["rows"]]
    body = []
    for r, c in zip(report["rows"], cells):
        row = [md_text(c[key]) if key in _USER_CELLS else c[key] for key, *_ in cols]
        if r["kind"] == "baseline":
            row = [f"*{x}*" if x else x for x in row]
        body.append(row)
    lines += _md_table([header for _, header, *_ in cols], body)
    lines += ["", "Tie (=): not significantly different from the team above. "
              "Valid / invalid / over quota: the team's submission counts.", ""]
    if report.get("absent"):
        lines += ["Teams without a scored submission: " + ", ".join(md_text(t) for t in report["absent"]) + ".", ""]
    if report["problems"] and report.get("problem_files", True):
        lines += ["## Invalid and ignored submissions", ""]
        lines += _md_table(
            ["Team", "Submission", "Submitted (UTC)", "Status", "Error"],
            [[md_text(p["label"]), md_text(p["submission"]), p["submitted_at"], p["status"], md_text(p["message"])]
             for p in report["problems"]],
        )
        lines.append("")
    elif report["problems"]:
        lines += ["## Invalid and ignored submissions", ""]
        lines += _md_table(["Team", "Invalid", "Over quota"],
                           [[md_text(t), str(n[0]), str(n[1])] for t, n in problem_counts(report).items()])
        lines += ["", "Each team sees its own files' errors on its page.", ""]
    lines += ["---", "", report["method"], ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- HTML

_SCRIPT = """(function () {
  "use strict";
  var table = document.getElementById("board");
  var heads = table.tHead.rows[0].cells;
  function value(row, col, numeric) {
    var cell = row.cells[col];
    var v = cell.getAttribute("data-value");
    if (v === null) { v = cell.textContent; }
    if (numeric) { var f = parseFloat(v); return isNaN(f) ? Infinity : f; }
    return v.toLowerCase();
  }
  function sortBy(col, dir) {
    var numeric = heads[col].getAttribute("data-type") === "num";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, col, numeric), y = value(b, col, numeric);
      if (x < y) { return -dir; }
      if (x > y) { return dir; }
      return Number(a.getAttribute("data-order")) - Number(b.getAttribute("data-order"));
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(heads, function (c) { c.removeAttribute("aria-sort"); });
    heads[col].setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    th.tabIndex = 0;
    function toggle() { sortBy(col, th.getAttribute("aria-sort") === "ascending" ? -1 : 1); }
    th.addEventListener("click", toggle);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { toggle(); } });
  });
  var m = /^#sort=([a-z_]+)(-desc)?$/.exec(window.location.hash);
  if (m) {
    for (var i = 0; i < heads.length; i++) {
      if (heads[i].getAttribute("data-key") === m[1]) { sortBy(i, m[2] ? -1 : 1); }
    }
  }
  document.body.setAttribute("data-sortable", "ready");
})();
"""

#: Figures in a box of their own: on a phone a figure squeezed to the screen's width has unreadable
#: labels, so it keeps 680 px and its box scrolls (the page itself does not). Shared by every page of a site.
FIGURE_CSS = """img { display: block; max-width: 100%; height: auto; }
.fig { overflow-x: auto; max-width: 100%; }
@media (max-width: 40em) { .fig img { width: 680px; max-width: none; } }"""

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 80em;
       padding: 0 1em; color: #1d1d1f; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0 1em; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.time { white-space: nowrap; }
#board th { cursor: pointer; background: #f2f4f7; position: sticky; top: 0; }
#board th[aria-sort="ascending"]::after { content: " \\25B2"; }
#board th[aria-sort="descending"]::after { content: " \\25BC"; }
tr.baseline td { color: #666; font-style: italic; }
tr.absent td { color: #666; }
nav.links { margin: 0 0 0.5em; }
td.team { min-width: 9em; max-width: 18em; overflow-wrap: anywhere; }
td.file { max-width: 14em; overflow-wrap: anywhere; }
#board { font-size: 0.85em; }
#board th { font-size: 0.95em; }
.scroll { overflow-x: auto; max-width: 100%; }
.notes li, .phase { color: #444; }
""" + FIGURE_CSS + """
h1, h2, p, li, summary { overflow-wrap: anywhere; }
@media (max-width: 40em) {
  body { margin: 1em auto; padding: 0 0.6em; }
  table { font-size: 0.85em; }
  #board [data-minor] { display: none; }
  td.team { min-width: 6em; }
}
details { margin: 0.2em 0; }
footer { margin-top: 2em; font-size: 0.85em; color: #555; border-top: 1px solid #ddd; padding-top: 0.5em; }
"""


def _sort_value(report, r, key):
    """What a board column sorts on (``data-value``), when not its text."""
    if r["kind"] == "baseline" and key in ("rank", "rank_ci", "move", "public_rank", "n"):
        return ""
    if any(key == c.name for c in report.get("extra", ())):
        return r.get(key)
    return {
        "rank": r.get("rank"), "move": r.get("move"), "public_rank": r.get("public_rank"),
        "dice": r["dice"], "ci": r.get("dice_lo"), "rank_ci": r.get("rank_lo"), "f1": r["f1"],
        "public_dice": r.get("public_dice"), "n": r.get("n_valid"),
    }.get(key)


_CELL_CLASS = {"team": ' class="team"', "submitted_at": ' class="time"', "submission": ' class="file"'}
#: Columns a phone leaves out (the sortable table keeps them for wider screens): rank, team and score stay.
_MINOR = {key: ' data-minor=""' for key in ("tied", "ci", "rank_ci", "f1", "submission", "submitted_at", "n", "public_dice",
                                             "public_rank")}


def _img(png: bytes, alt: str) -> str:
    # In a box of its own: on a phone the figure keeps a readable size and its box scrolls (FIGURE_CSS).
    return (f'<div class="fig"><img alt="{h(alt)}" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}"></div>')


def _history_html(report) -> list:
    d = report["decimals"]
    revealed = report["revealed"]
    out = []
    for team in report["histories"]:
        n = len(team["submissions"])
        out.append(f"<details><summary>{h(team['label'])} ({n} submission{'s' if n != 1 else ''})</summary>")
        st = report.get("score_title", "Dice")
        heads = ["Submitted (UTC)", "Submission", "Status", f"{st} (public)"] + ([f"{st} (private)"] if revealed else [])
        out.append('<div class="scroll"><table><thead><tr>' + "".join(f"<th>{x}</th>" for x in heads)
                   + "</tr></thead><tbody>")
        for s in team["submissions"]:
            status = s["status"] + (" \u2605 on the board" if s["selected"] else "")
            cells = [h(s["submitted_at"]), h(s["submission"]), h(status)]
            cells.append(h(fmt(s.get("public"), d)))
            if revealed:
                cells.append(h(fmt(s.get("private"), d)))
            out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        out.append("</tbody></table></div></details>")
    return out


def problem_counts(report) -> dict:
    """``{team: (invalid, over quota)}`` of the report's invalid and ignored submissions.

    Examples
    --------
    >>> problem_counts({"problems": [{"label": "a", "status": "invalid"}, {"label": "a", "status": "over quota"},
    ...                              {"label": "b", "status": "invalid"}]})
    {'a': (1, 1), 'b': (1, 0)}
    """
    counts: dict = {}
    for p in report["problems"]:
        invalid, over = counts.get(p["label"], (0, 0))
        counts[p["label"]] = (invalid + (p["status"] == "invalid"), over + (p["status"] != "invalid"))
    return counts


def content_security_policy() -> str:
    """The page's policy: its inline style, ``data:`` figures and its one script (by hash); nothing else.

    A server that serves the page sends it as a header too (adding ``frame-ancestors``,
    which a ``<meta>`` policy cannot carry).
    """
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode("utf-8")).digest()).decode("ascii")
    return f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'"


def index_html(report) -> str:
    """The one self-contained page."""
    csp = content_security_policy()
    cols = _board_headers(report)
    numeric = {"rank", "tied", "move", "public_rank", "dice", "ci", "rank_ci", "f1", "public_dice", "n"}
    numeric |= {c.name for c in report.get("extra", ())}
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{h(report['title'])}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        f'<body data-phase="{h(report["phase"])}">',
    ]
    if report.get("links"):
        out.append('<nav class="links">' + " \u00b7 ".join(f'<a href="{h(href)}">{h(text)}</a>'
                                                          for text, href in report["links"]) + "</nav>")
    out += [
        f"<h1>{h(report['title'])}</h1>",
        f'<p class="phase">{h(report["subtitle"])}</p>',
    ]
    if report["notes"]:
        out.append('<ul class="notes">' + "".join(f"<li>{h(n)}</li>" for n in report["notes"]) + "</ul>")
    out.append('<div class="scroll"><table id="board"><thead><tr>')
    out += [f'<th data-key="{key}" data-type="{typ}" scope="col"{_MINOR.get(cell, "")}>{h(header)}</th>'
            for cell, header, typ, key in cols]
    out.append("</tr></thead><tbody>")
    for i, r in enumerate(report["rows"]):
        cells = _display_cells(report, r)
        tds = []
        for key, _, typ, skey in cols:
            cls = _CELL_CLASS.get(key, ' class="num"' if key in numeric else "")
            sv = _sort_value(report, r, skey) if typ == "num" else None
            if isinstance(sv, float):
                sv = f"{sv:.6f}"
            attr = f' data-value="{h(sv)}"' if sv is not None else ""
            title = ""
            if key == "tied" and cells["tied"]:
                title = f' title="Holm-adjusted p = {r["p_vs_above"]:.3g} against the team above"'
            tds.append(f"<td{cls}{attr}{title}{_MINOR.get(key, '')}>{h(cells[key])}</td>")
        out.append(f'<tr class="{r["kind"]}" data-order="{i}">' + "".join(tds) + "</tr>")
    for j, team in enumerate(report.get("absent", ()), start=len(report["rows"])):
        # Roster teams with nothing on the board, at its bottom (sorting keeps them there: no values).
        tds = ['<td class="team">' + h(team) + "</td>" if key == "team" else
               ('<td class="num">no submission</td>' if key == "dice" else f"<td{_MINOR.get(key, '')}></td>")
               for key, *_ in cols]
        out.append(f'<tr class="absent" data-order="{j}">' + "".join(tds) + "</tr>")
    out.append("</tbody></table></div>")
    out.append('<p class="legend">Click a column to sort. Tie (=): not significantly different from the team '
               "above. Valid / invalid / over quota: the team's submission counts. Baselines are reference "
               "rows, never ranked.</p>")
    figs = report["figures"]
    out += ["<h2>Scores and their 95% intervals</h2>", _img(figs["whiskers"], "scores with 95% intervals")]
    out.append('<p><a href="stability.html">Ranking stability</a>: Kendall\'s tau over the bootstrap, how often '
               "each team takes each rank, and which teams are significantly better than which.</p>")
    out += ["<h2>Submission history</h2>", _img(figs["history"], "every team's submissions over time")]
    out += _history_html(report)
    out += ["<h2>Score distribution</h2>", _img(figs["distribution"], "distribution of scores")]
    if report["problems"] and report.get("problem_files", True):
        out.append("<h2>Invalid and ignored submissions</h2>")
        out.append('<div class="scroll"><table><thead><tr><th>Team</th><th>Submission</th><th>Submitted (UTC)</th>'
                   "<th>Status</th><th>Error</th></tr></thead><tbody>")
        for p in report["problems"]:
            out.append("<tr>" + "".join(f"<td>{h(p[k])}</td>" for k in
                                        ("label", "submission", "submitted_at", "status", "message")) + "</tr>")
        out.append("</tbody></table></div>")
    elif report["problems"]:
        # Counts only: a file's name and its error text are the team's own (shown on its page).
        out.append("<h2>Invalid and ignored submissions</h2>")
        out.append('<table id="problems"><thead><tr><th>Team</th><th class="num">Invalid</th>'
                   '<th class="num">Over quota</th></tr></thead><tbody>')
        for team, (invalid, over) in problem_counts(report).items():
            out.append(f'<tr><td class="team">{h(team)}</td><td class="num">{invalid}</td>'
                       f'<td class="num">{over}</td></tr>')
        out.append("</tbody></table>")
    out.append(f"<footer><p>{h(report['method'])}</p></footer>")
    out.append(f"<script>{_SCRIPT}</script>")
    out.append("</body>")
    out.append("</html>")
    return "\n".join(out) + "\n"

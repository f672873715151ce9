"""The live board's ranking stability page: served beside the board, with its own policy, linked from it."""
from __future__ import annotations

from fastapi.testclient import TestClient

from brats_kit.server.app import create_app
from test_live_board import files, hand_in  # noqa: F401  (files: the module's submissions fixture)
from test_server_support import Clock, make_course


def test_the_board_links_its_stability_page_and_the_server_serves_it(tmp_path, competition, scorer, files):
    root, tok, admin = make_course(tmp_path, competition, teams=("alpha", "beta"))
    clock = Clock()
    app = create_app(root, clock=clock, scorer=scorer, board_interval_s=0.05)
    with TestClient(app) as c:
        hand_in(c, tok["alpha"], files["good"])
        clock.advance(minutes=1)
        hand_in(c, tok["beta"], files["worse"])
        assert app.state.board.wait_current(timeout=120), app.state.board.last_error
        board = c.get("/leaderboard").text
        assert 'href="stability.html"' in board
        # The board is served at /leaderboard: its relative link lands on /stability.html, sent on.
        page = c.get("/stability.html")
        assert page.history and page.history[0].status_code == 307
        assert page.url.path == "/leaderboard/stability.html" and page.status_code == 200
        assert "Kendall" in page.text and 'data-phase="public"' in page.text and "alpha" in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
        assert c.get("/leaderboard/index.html").status_code == 200  # the page's "back" link

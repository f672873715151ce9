"""The students' client commands against a real server on loopback: ``submissions``, ``finals``, a
server given without its scheme; and ``notebook``, which copies the starting kit."""
from __future__ import annotations

import json
import re
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from click.testing import CliRunner

from brats_kit.cli import main
from brats_kit.commands.submit import format_submissions
from brats_kit.server import start_server
from brats_kit.server.client import list_submissions, server_url, submit
from data_spec import load_truth
from data_spec.errors import BadArgumentError
from data_spec.submission import write_submission
from starter.notebooks import NOTEBOOK, copy_notebook, notebook_path
from test_server_support import Clock, make_course, shifted


def cli(*args, token_env=None):
    """The command in this process; $BRATS_KIT_TOKEN is unset unless ``token_env`` is given."""
    return CliRunner().invoke(main, [str(a) for a in args], env={"BRATS_KIT_TOKEN": token_env})


@pytest.fixture(scope="module")
def files(tmp_path_factory, competition):
    y = load_truth(competition / "private").y
    d = tmp_path_factory.mktemp("client-subs")
    out = {k: write_submission(d / f"shift{k}.npy", shifted(y, k)) or d / f"shift{k}.npy" for k in (0, 3, 6)}
    np.save(d / "bad255.npy", y * np.uint8(255))
    out["bad"] = d / "bad255.npy"
    return out


@pytest.fixture()
def course(tmp_path, competition, scorer):
    """A course (3 teams, 2 finals, deadline three days after the clock's start) served on loopback."""
    clock = Clock()
    root, tok, _ = make_course(tmp_path, competition, per_day=5, finals=2, deadline="2026-11-05T09:00:00+00:00")
    server = start_server(root, clock=clock, scorer=scorer)
    try:
        yield server, tok, clock
    finally:
        server.stop()


def test_submissions_and_finals_commands_on_a_server_given_without_its_scheme(course, files):
    server, tok, clock = course
    bare = server.url.removeprefix("http://")  # "127.0.0.1:PORT": what students type
    sent = cli("submit", files[0], "--server", bare, "--token", tok["alpha"], "--json")
    assert sent.exit_code == 0, sent.output  # was httpx's UnsupportedProtocol (an internal error, exit 3)
    best = json.loads(sent.output)["id"]
    worse = submit(files[6], bare, tok["alpha"]).id
    invalid = submit(files["bad"], bare, tok["alpha"], validate=False).id  # the server's own verdict
    other = submit(files[3], bare, tok["beta"]).id

    listed = cli("submissions", "--server", bare, "--json", token_env=tok["alpha"])  # the token from the environment
    assert listed.exit_code == 0, listed.output
    listing = json.loads(listed.output)
    assert listing["team"] == "alpha" and [r["id"] for r in listing["submissions"]] == [best, worse, invalid]
    assert listing["remaining_today"] == 3 and listing["finals_allowed"] == 2
    text = cli("submissions", "--server", server.url, "--token", tok["alpha"])
    assert text.exit_code == 0
    assert "team alpha: 3 submissions" in text.output and "INVALID" in text.output and "bad_values" in text.output
    assert "dice" in text.output and "valid submissions left today: 3" in text.output and "FINAL" not in text.output

    chosen = cli("finals", best, worse, "--server", bare, "--token", tok["alpha"])
    assert chosen.exit_code == 0, chosen.output
    assert f"finals of team alpha: {best}, {worse}" in chosen.output
    assert {r["id"] for r in list_submissions(bare, tok["alpha"])["submissions"] if r["final"]} == {best, worse}
    assert cli("submissions", "--server", bare, "--token", tok["alpha"]).output.count("FINAL") == 2

    # Refusals keep the earlier choice and exit 1 with the server's reason.
    too_many = cli("finals", best, worse, invalid, "--server", bare, "--token", tok["alpha"])
    assert too_many.exit_code == 1 and "at most 2" in too_many.output
    not_scored = cli("finals", invalid, "--server", bare, "--token", tok["alpha"], "--json")
    assert not_scored.exit_code == 1
    assert json.loads(not_scored.output)["error"]["code"] == "not_scored"
    theirs = cli("finals", other, "--server", bare, "--token", tok["alpha"], "--json")
    assert theirs.exit_code == 1 and json.loads(theirs.output)["http_status"] == 404
    assert {r["id"] for r in list_submissions(bare, tok["alpha"])["submissions"] if r["final"]} == {best, worse}
    # Another team sees only its own receipts.
    assert [r["id"] for r in list_submissions(server.url, tok["beta"])["submissions"]] == [other]

    cleared = cli("finals", "--clear", "--server", bare, "--token", tok["alpha"], "--json")
    assert cleared.exit_code == 0 and json.loads(cleared.output)["finals"] == []
    assert not any(r["final"] for r in list_submissions(bare, tok["alpha"])["submissions"])

    clock.advance(days=4)  # past the deadline: the finals are closed
    late = cli("finals", best, "--server", bare, "--token", tok["alpha"], "--json")
    assert late.exit_code == 1 and json.loads(late.output)["http_status"] == 403


def test_client_commands_refuse_a_wrong_token_a_bad_scheme_and_name_an_unreachable_server(course, files):
    server, tok, _ = course
    for args in (("submissions",), ("finals", "1"), ("submit", files[0])):
        wrong = cli(*args, "--server", server.url, "--token", "not-a-token")
        assert wrong.exit_code == 1 and "401" in wrong.output and "check the token" in wrong.output
        ftp = cli(*args, "--server", "ftp://" + server.url.removeprefix("http://"), "--token", tok["alpha"])
        assert ftp.exit_code == 2 and "http or https" in ftp.output and "HOST:PORT" in ftp.output
        assert cli(*args, "--server", server.url).exit_code == 2  # no token: a usage error
    assert cli("finals", "--server", server.url, "--token", tok["alpha"]).exit_code == 2  # neither ids nor --clear
    assert cli("finals", "3", "--clear", "--server", server.url, "--token", tok["alpha"]).exit_code == 2
    assert cli("finals", "0", "--server", server.url, "--token", tok["alpha"]).exit_code == 2
    port = server.url.rsplit(":", 1)[1]
    server.stop()
    for args in (("submissions",), ("finals", "1")):
        gone = cli(*args, "--server", f"127.0.0.1:{port}", "--token", tok["alpha"])
        assert gone.exit_code == 4 and "cannot reach http://127.0.0.1:" in gone.output


@pytest.mark.parametrize("given, url", [("127.0.0.1:8000", "http://127.0.0.1:8000"), ("localhost", "http://localhost"),
                                        ("HTTPS://course.example.org/", "https://course.example.org"),
                                        ("[::1]:8000", "http://[::1]:8000")])
def test_server_url_adds_http_to_a_bare_host(given, url):
    assert server_url(given) == url == server_url(url)


@pytest.mark.parametrize("given", ["ftp://host", "file:///etc/passwd", "javascript:alert(1)", "http:/host", "http://",
                                   ":8000", ""])
def test_server_url_refuses_other_schemes_and_no_host(given):
    with pytest.raises(BadArgumentError) as info:
        server_url(given)
    assert info.value.code == "bad_server_url" and info.value.hint


def test_a_hostile_servers_answer_is_printed_escaped():
    listing = {"team": "\x1b[2Jalpha", "submissions": [
        {"id": 1, "submitted_at": "2026-11-02T09:00:00Z\r", "status": "invalid", "sha256": "ab" * 32,
         "errors": [{"code": "bad_values", "message": "values\x1b]0;pwned\x07 255"}], "public": None, "final": False}],
        "remaining_today": 4, "quota_resets_at": "2026-11-03T00:00:00Z", "deadline": None, "finals_allowed": 2}
    text = format_submissions(listing)
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text and "\\x1b[2Jalpha" in text


# -- brats-kit notebook ----------------------------------------------------------------------------

def test_notebook_is_copied_then_left_alone_and_a_different_one_kept_without_force(tmp_path):
    out = tmp_path / "work" / "kit"
    first = cli("notebook", "--out", out)
    assert first.exit_code == 0 and str(out / NOTEBOOK) in first.output
    assert (out / NOTEBOOK).read_bytes() == notebook_path().read_bytes()
    again = cli("notebook", "--out", out, "--json")
    assert again.exit_code == 0 and json.loads(again.output)["status"] == "unchanged"
    (out / NOTEBOOK).write_text("my own work", encoding="utf-8")
    refused = cli("notebook", "--out", out)
    assert refused.exit_code == 1 and "--force" in refused.output
    assert (out / NOTEBOOK).read_text(encoding="utf-8") == "my own work"
    forced = cli("notebook", "--out", out, "--force", "--json")
    assert forced.exit_code == 0 and json.loads(forced.output)["status"] == "replaced"
    assert (out / NOTEBOOK).read_bytes() == notebook_path().read_bytes()
    assert sorted(os.listdir(out)) == [NOTEBOOK]  # no temporary file left


def test_notebook_never_follows_a_link_nor_writes_into_private_or_onto_a_file(tmp_path, competition):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf-8")
    out = tmp_path / "kit"
    out.mkdir()
    (out / NOTEBOOK).symlink_to(victim)
    assert cli("notebook", "--out", out).exit_code == 1
    assert copy_notebook(out, force=True)["status"] == "replaced"
    assert victim.read_text(encoding="utf-8") == "precious" and not (out / NOTEBOOK).is_symlink()
    private = cli("notebook", "--out", competition / "private")
    assert private.exit_code == 1 and "private" in private.output and not (competition / "private" / NOTEBOOK).exists()
    assert cli("notebook", "--out", victim).exit_code == 1 and victim.read_text(encoding="utf-8") == "precious"


class _Foreign(BaseHTTPRequestHandler):
    """Another web server at the address: HTML, or JSON that is not the course's."""

    def _answer(self):
        body = b"<html>hello</html>" if "html" in self.server.kind else b'{"submissions": "nope", "team": 7}'
        self.send_response(201 if self.command == "POST" else 200)
        self.send_header("Content-Type", "text/html" if "html" in self.server.kind else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("kind", ["html", "json"])
def test_a_server_that_is_not_the_course_api_is_a_named_error_not_a_crash(kind, files):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Foreign)
    httpd.kind = kind
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        where = f"127.0.0.1:{httpd.server_address[1]}"
        for args in (("submissions",), ("finals", "1"), ("submit", files[0])):
            out = cli(*args, "--server", where, "--token", "t", "--json")
            assert out.exit_code == 1, out.output  # not 3, an internal error
            assert json.loads(out.output)["error"]["code"] == "bad_response"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_times_are_printed_to_the_minute_in_a_named_zone_not_as_utc_microseconds():
    listing = {"team": "alpha", "submissions": [
        {"id": 1, "submitted_at": "2026-11-02T09:00:07.013769Z", "status": "scored", "sha256": "ab" * 32,
         "errors": [], "public": {"dice": 0.9}, "final": False}],
        "remaining_today": 4, "quota_resets_at": "2026-11-03T00:00:00Z", "deadline": "2026-12-15T22:59:00Z",
        "finals_allowed": 2}
    text = format_submissions(listing)
    assert ".013769" not in text and "T09:00" not in text and "22:59:00Z" not in text
    assert re.search(r"\b2026-11-0[23] \d\d:\d\d \S+", text) and "deadline: 2026-12-1" in text


def test_a_code_folder_zips_to_the_same_bytes_whenever_it_is_sent(tmp_path):
    import time as time_module

    from brats_kit.server.client import zip_code

    code = tmp_path / "code"
    code.mkdir()
    (code / "submission.py").write_text("def predict(x):\n    return (x[..., 3] > 0).astype('uint8')\n")
    (code / "notes.txt").write_text("ours\n")
    first = zip_code(code)
    time_module.sleep(2.1)  # past a zip timestamp's 2-second step: the copy zip_code checks has new mtimes
    assert zip_code(code) == first

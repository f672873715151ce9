"""A refusal sent before the body is read (401, 413, 429) reaches the client as that status, never a reset."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from brats_kit.server.client import SubmissionRefused, submit
from brats_kit.server.run import ServerThread
from data_spec import load_truth
from test_server_support import Clock, make_course, shifted

API = "/api/v1"
BIG = 48 << 20  # far over what the kernel's socket buffers hold: the server must read or drain it


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    path = tmp_path_factory.mktemp("early") / "big.dat"
    with open(path, "wb") as fh:
        fh.truncate(BIG)
    return path


@pytest.fixture()
def server(tmp_path, competition, scorer):
    root, tok, _ = make_course(tmp_path, competition, per_day=1, max_invalid_per_day=0)
    good = tmp_path / "good.npy"
    np.save(good, shifted(load_truth(competition / "private").y, 3))
    with ServerThread(root, scorer=scorer, clock=Clock(), board_interval_s=0) as s:
        s.tok, s.good = tok, good
        yield s


def test_the_client_gets_401_413_and_429_for_a_large_body(server, big):
    for token, status in (("wrong-token", 401), (server.tok["alpha"], 413)):
        with pytest.raises(SubmissionRefused) as refused:
            submit(big, server.url, token, validate=False)
        assert refused.value.status == status
    submit(server.good, server.url, server.tok["beta"])  # beta's one file of the day (no invalid allowed)
    with pytest.raises(SubmissionRefused) as refused:
        submit(big, server.url, server.tok["beta"], validate=False)
    assert refused.value.status == 429 and refused.value.code == "quota_exceeded"


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
@pytest.mark.parametrize("form", [True, False])
@pytest.mark.parametrize("close", [False, True])
def test_curl_gets_401_and_413_for_a_large_body(server, big, form, close):
    def curl(token, path=f"{API}/submissions"):
        body = ["-F", f"file=@{big}"] if form else ["--data-binary", f"@{big}", "-H", "Expect:"]
        extra = ["-H", "Connection: close"] if close else []
        out = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-H", f"Authorization: Bearer {token}",
                              *body, *extra, f"{server.url}{path}"], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr  # curl's exit code 55/56 is a reset while sending or receiving
        text, code = out.stdout.rsplit("\n", 1)
        return int(code), json.loads(text)["error"]["code"]

    assert curl("wrong-token") == (401, "unauthorized")
    assert curl(server.tok["alpha"]) == (413, "too_large")
    assert curl("", "/signin") == (413, "too_large")  # a form outside the upload: the small cap


def _answer(sock) -> int:
    """The status of the HTTP answer on ``sock`` (read whole: head and Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the server closed before answering"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(head.split()[1])


@pytest.mark.parametrize("path, auth, status", [(f"{API}/submissions", "Bearer wrong-token", 401),
                                                ("/signin", "", 413)])
@pytest.mark.parametrize("connection", ["close", "keep-alive"])
def test_a_client_still_sending_after_an_early_answer_is_not_reset(server, path, auth, status, connection):
    """What a proxy (nginx speaks HTTP/1.0 with ``Connection: close`` upstream) or curl does: the answer comes
    while the body is still being sent; the rest must be taken, and the connection end in order."""
    import socket

    total, chunk = 40 << 20, b"\0" * (1 << 20)
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nConnection: {connection}\r\n"
                     f"Content-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n".encode() + chunk)
        assert _answer(sock) == status
        for _ in range(total // len(chunk) - 1):  # a reset here is what the client would have seen
            sock.sendall(chunk)
        if connection == "close":
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(1) == b""  # an orderly end (FIN), not a reset

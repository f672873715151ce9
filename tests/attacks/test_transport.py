"""Attacks on the transport: connections that never send a request, forged client addresses, few open files."""
from __future__ import annotations

import resource
import socket
import subprocess
import sys

import httpx

from brats_kit.server.run import ServerThread
from test_server_support import make_course

API = "/api/v1"


def test_half_open_connections_are_closed_and_others_are_served(tmp_path, competition, scorer):
    root, _, _ = make_course(tmp_path, competition)
    with ServerThread(root, scorer=scorer, board_interval_s=0, header_timeout=1.0) as server:
        idle = []
        for i in range(200):
            s = socket.create_connection(("127.0.0.1", server.port))
            if i % 2:  # half of them start a request and never finish its headers
                s.sendall(b"GET /api/v1/competition HTTP/1.1\r\nHost: x\r\n")
            idle.append(s)
        # Another client is served while they hang on.
        assert httpx.get(f"{server.url}{API}/competition", timeout=30).status_code == 200
        # The server, not the client, closes every idle one (recv sees the end of the stream).
        for s in idle:
            s.settimeout(30)
            assert s.recv(1024) == b""
            s.close()
        # A client that sends its request in time on a kept-alive connection is not cut off by the deadline.
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert [c.get(f"{API}/competition").status_code for _ in range(3)] == [200] * 3


def _guess(url: str, forwarded_for: str) -> int:
    return httpx.get(f"{url}{API}/submissions", timeout=30,
                     headers={"Authorization": "Bearer wrong", "X-Forwarded-For": forwarded_for}).status_code


def test_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path, competition, scorer):
    root, _, _ = make_course(tmp_path, competition)
    # Not configured: X-Forwarded-For is the client's to forge, so it is ignored (a guesser cannot escape the limiter).
    with ServerThread(root, scorer=scorer, board_interval_s=0) as server:
        codes = [_guess(server.url, f"10.0.0.{i}") for i in range(21)]
        assert codes[-1] == 429
    # Behind a trusted proxy (here: loopback), each client is the address the proxy names.
    with ServerThread(root, scorer=scorer, board_interval_s=0, forwarded_allow_ips="127.0.0.1") as server:
        codes = [_guess(server.url, "10.0.0.1") for i in range(21)]
        assert codes[-1] == 429
        assert _guess(server.url, "10.0.0.2") == 401  # a student behind the same proxy is not that guesser


def test_the_soft_open_files_limit_is_raised_to_the_hard_one():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = min(256, hard)

    def lower():
        resource.setrlimit(resource.RLIMIT_NOFILE, (low, hard))

    code = ("import resource; from brats_kit.server.run import raise_open_files_limit as r; "
            "before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]; print(before, *r())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, preexec_fn=lower, check=True)
    before, after, hard_after = map(int, out.stdout.split())
    assert before == low and after == hard_after == hard


def test_server_run_passes_the_transport_options(tmp_path, competition, monkeypatch):
    from click.testing import CliRunner

    import brats_kit.server.run as run_module
    from brats_kit.cli import main

    root, _, _ = make_course(tmp_path, competition)
    seen = {}
    monkeypatch.setattr(run_module, "serve", lambda course, **kw: seen.update(kw))
    result = CliRunner().invoke(main, ["server", "run", str(root), "--port", "8123", "--forwarded-allow-ips",
                                       "10.0.0.5", "--header-timeout", "3", "--keep-alive", "2",
                                       "--max-inflight-per-team", "2", "--limit-concurrency", "100"])
    assert result.exit_code == 0, result.output
    assert seen == {"host": "127.0.0.1", "port": 8123, "forwarded_allow_ips": "10.0.0.5", "header_timeout": 3.0,
                    "keep_alive_s": 2, "limit_concurrency": 100, "max_inflight_per_team": 2, "https_only": False,
                    "executor": None, "code_workers": None, "replica": False}
    config = run_module.uvicorn_config(object(), forwarded_allow_ips="10.0.0.5", header_timeout=3)
    assert config.proxy_headers and config.forwarded_allow_ips == "10.0.0.5" and config.http.header_timeout == 3.0
    assert not run_module.uvicorn_config(object()).proxy_headers  # no proxy named: no X-Forwarded-For believed

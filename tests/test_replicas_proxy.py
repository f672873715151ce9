"""README's nginx recipe for two replicas, run for real (issue 24).

The configuration is README.md's own ```nginx block under "Behind a reverse proxy", changed only
where a test must (it listens on a random loopback port without TLS, its upstream names the
replicas' ports, and the pid, logs and temporary files are in a temporary folder), so a README edit
that breaks the recipe breaks these tests. The tests run in order on one course behind one nginx.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from brats_kit.server.course import Course
from brats_kit.server.db import Submission
from data_spec import load_truth
from data_spec.submission import write_submission
from test_replicas import API, _csrf, start_replicas, stop_all, upload
from test_server_support import make_course, shifted
from test_submit import cli, free_port

README = Path(__file__).resolve().parents[1] / "README.md"
#: Debian puts nginx in /usr/sbin, which is not on every user's PATH.
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                       if os.access(p, os.X_OK)), None)
pytestmark = pytest.mark.skipif(NGINX is None,
                                reason="nginx is not installed (apt-get install nginx-light; .ci/run does it)")

TEAMS = ("alpha", "beta", "gamma", "delta", "epsilon")
PER_DAY = 2
UPLOAD = f'"POST {API}/submissions HTTP/1.1"'


def readme_nginx(readme: Path = README) -> str:
    """The ```nginx block of README's "Behind a reverse proxy" recipe for replicas."""
    section = readme.read_text(encoding="utf-8").split("#### Behind a reverse proxy", 1)
    assert len(section) == 2, "README.md has no '#### Behind a reverse proxy' section"
    block = re.search(r"```nginx\n(.*?)```", section[1], re.S)
    assert block, "README.md's reverse-proxy section has no ```nginx block"
    return block.group(1)


def adapted(block: str, listen_port: int, upstream_ports) -> str:
    """``block`` with its listen line on a loopback port without TLS and its upstream on ``upstream_ports``."""
    ports = iter(upstream_ports)
    conf, n = re.subn(r"\bserver\s+127\.0\.0\.1:\d+\s*;", lambda m: f"server 127.0.0.1:{next(ports)};", block)
    assert n == len(upstream_ports), f"README's upstream names {n} replicas, not {len(upstream_ports)}"
    conf, n = re.subn(r"\blisten\s+[^;]*;", f"listen 127.0.0.1:{listen_port};", conf)
    assert n == 1, "README's server block has no single listen line"
    return conf


def nginx_conf(block: str, folder: Path) -> str:
    """A whole nginx.conf around ``block`` (http context), everything it writes under ``folder``."""
    temp = "\n".join(f"    {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                          "uwsgi", "scgi"))
    # As root the workers would switch to nobody, who cannot enter pytest's private temporary folder.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (f"{user}daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
            f"error_log {folder / 'error.log'} notice;\nevents {{ worker_connections 256; }}\n"
            f"http {{\n    access_log {folder / 'access.log'};\n{temp}\n{block}\n}}\n")


class Nginx:
    """``nginx -c FILE -p PREFIX`` in the foreground on a free loopback port, in front of ``upstream_ports``."""

    def __init__(self, folder: Path, upstream_ports):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        conf = folder / "nginx.conf"
        conf.write_text(nginx_conf(adapted(readme_nginx(), self.port, upstream_ports), folder))
        self.proc = subprocess.Popen([NGINX, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, (folder / "error.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful: the master waits for its worker
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory, competition, pg_cluster):
    """Two replicas of one PostgreSQL course behind README's nginx, and distinct valid submissions."""
    tmp = tmp_path_factory.mktemp("proxied")
    root, tokens, admin = make_course(tmp, competition, db=pg_cluster.new_database(), per_day=PER_DAY, teams=TEAMS)
    truth = load_truth(competition / "private")
    files = []
    for i in range(14):
        write_submission(tmp / f"good-{i}.npy", shifted(truth.y, i + 1))
        files.append(tmp / f"good-{i}.npy")
    replicas = start_replicas(root, tmp, 2, "--forwarded-allow-ips", "127.0.0.1")
    try:
        nginx = Nginx(tmp / "nginx", [r.port for r in replicas])
    except BaseException:
        stop_all(replicas)
        raise
    yield {"root": root, "tokens": tokens, "replicas": replicas, "url": nginx.url, "files": files, "tmp": tmp}
    nginx.stop()
    stop_all(replicas)


def served(replicas, request_line: str) -> list:
    """How many requests starting with ``request_line`` each replica answered (uvicorn's access log)."""
    return [sum(1 for line in r.log.read_text(errors="replace").splitlines() if request_line in line)
            for r in replicas]


def test_readme_recipe_keeps_the_directives_replicas_rely_on():
    block = readme_nginx()
    for directive in (r"upstream\s+\w+\s*\{", r"keepalive\s+\d+;", r"client_max_body_size\s+\d+[km]?;",
                      r"proxy_request_buffering\s+off;", r"proxy_set_header\s+X-Forwarded-For\s+\$remote_addr;",
                      r"proxy_set_header\s+X-Forwarded-Proto\s+\$scheme;", r"proxy_next_upstream\s+error;"):
        assert re.search(directive, block), f"README's nginx recipe lost {directive!r}"


def test_concurrent_uploads_of_several_teams_through_nginx_keep_exact_quotas_on_both_replicas(proxied):
    teams, files = ("alpha", "beta", "gamma"), proxied["files"]
    jobs = [(team, files[3 * k + j]) for k, team in enumerate(teams) for j in range(PER_DAY + 1)]
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(lambda job: upload(proxied["url"], proxied["tokens"][job[0]], job[1]), jobs))
    by_team = {team: [a for (t, _), a in zip(jobs, answers) if t == team] for team in teams}
    for team, got in by_team.items():
        codes = sorted(a.status_code for a in got)
        assert codes == [201] * PER_DAY + [429], (team, [a.text for a in got])
        assert {a.json()["error"]["code"] for a in got if a.status_code == 429} <= {"quota_exceeded",
                                                                                   "too_many_in_flight"}
        assert sorted(a.json()["remaining_today"] for a in got if a.status_code == 201) == list(range(PER_DAY))
    with Course(proxied["root"]) as c, c.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Submission)
                        .where(Submission.status == "scored")) == PER_DAY * len(teams)
    counts = served(proxied["replicas"], UPLOAD)
    # Each upload reached exactly one replica (proxy_next_upstream error never sends one twice), both worked.
    assert sum(counts) == len(jobs) and min(counts) > 0, counts


def test_brats_kit_submit_through_nginx_gets_its_receipt_and_its_refusal(proxied):
    url, tokens, files = proxied["url"], proxied["tokens"], proxied["files"]
    ok = cli("submit", files[9], "--server", url, "--token", tokens["delta"], "--json")
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["remaining_today"] == PER_DAY - 1
    over = cli("submit", files[10], "--server", url, "--token", tokens["alpha"], "--json")  # alpha spent its 2
    assert over.exit_code == 1, over.output
    assert "quota_exceeded" in over.output


def test_an_upload_over_the_cap_is_refused_by_the_replica_not_by_nginx(proxied, tmp_path):
    cap = httpx.get(f"{proxied['url']}{API}/competition").json()["max_bytes"]
    big = tmp_path / "big.npy"
    big.write_bytes(b"\0" * (cap + 4096))  # below client_max_body_size: nginx streams it on to a replica
    answer = upload(proxied["url"], proxied["tokens"]["delta"], big)
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "too_large"  # the server's named refusal, not nginx's HTML page


def test_a_browser_signed_in_through_nginx_stays_signed_in_on_either_replica(proxied):
    with httpx.Client(base_url=proxied["url"]) as browser:
        csrf = _csrf(browser.get("/").text)
        signin = browser.post("/signin", data={"csrf": csrf, "token": proxied["tokens"]["beta"], "role": "team"})
        assert signin.status_code == 303, signin.text
        pages = [browser.get("/team") for _ in range(6)]
    assert [p.status_code for p in pages] == [200] * 6
    assert all("beta" in p.text for p in pages)
    counts = served(proxied["replicas"], '"GET /team HTTP/1.1" 200')
    assert sum(counts) == 6 and min(counts) > 0, counts  # round robin: each replica served some of them


def _from(address: str) -> httpx.Client:
    """A client whose connections leave from ``address`` (all of 127.0.0.0/8 is loopback)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address))


def test_the_failure_limiter_counts_the_clients_address_not_nginxs_nor_a_forged_header(proxied):
    url, good = f"{proxied['url']}{API}/submissions", proxied["tokens"]["gamma"]
    with _from("127.0.0.2") as hostile:
        # A forged X-Forwarded-For each time: nginx replaces it with the address it sees.
        codes = [hostile.get(url, headers={"Authorization": "Bearer nope", "X-Forwarded-For": f"10.9.8.{i}"})
                 .status_code for i in range(30)]
    first = codes.index(429) if 429 in codes else len(codes)
    assert 0 < first <= 20 and codes[:first] == [401] * first and codes[first:] == [429] * (30 - first), codes
    with _from("127.0.0.3") as other:  # another student behind the same nginx is not locked out
        assert other.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert other.get(url, headers={"Authorization": f"Bearer {good}"}).status_code == 200
    with Course(proxied["root"]) as c, c.engine.connect() as conn:
        seen = Counter(conn.execute(text("SELECT address FROM brats_auth_failure")).scalars())
    assert set(seen) == {"127.0.0.2", "127.0.0.3"}, seen


def test_a_killed_replicas_share_goes_to_the_other_and_no_upload_is_sent_twice(proxied):
    dead, alive = proxied["replicas"]
    dead.kill()
    before = served([alive], UPLOAD)[0]
    files, token = proxied["files"], proxied["tokens"]["epsilon"]
    # One after another: round robin sends some to the dead port, whose refused connection nginx retries.
    answers = [upload(proxied["url"], token, path) for path in files[11:14]]
    assert [a.status_code for a in answers] == [201, 201, 429], [a.text for a in answers]
    assert answers[2].json()["error"]["code"] == "quota_exceeded"
    assert served([alive], UPLOAD)[0] - before == 3


def test_the_audit_holds_after_everything_went_through_nginx(proxied):
    result = cli("server", "audit", proxied["root"], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["ok"] is True

"""One team fires many hanging files at once: it holds one scoring worker, and its over-quota files are never scored."""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import httpx
import numpy as np
import pytest

from brats_kit.server.quotas import InFlight
from brats_kit.server.refusal import Refusal
from brats_kit.server.run import ServerThread
from data_spec import load_truth
from grader.isolation import IsolatedScorer
from test_server_isolation import _hanging_hdf5
from test_server_support import Clock, make_course, shifted

API = "/api/v1"
HANG_S = 4.0


class CountingScorer:
    """The isolated scorer, counting the files it was given (by the order they came)."""

    def __init__(self, inner):
        self.inner, self.files, self._lock = inner, [], threading.Lock()

    def submit(self, path):
        with self._lock:
            self.files.append(open(path, "rb").read(8))
        return self.inner.submit(path)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(scope="module")
def slow_scorer(competition):
    """Two workers, as a course has, with a short time limit (the hanging file's verdict comes after it)."""
    with IsolatedScorer(competition / "private", workers=2, timeout=HANG_S) as s:
        yield s


def test_a_flooding_team_holds_one_worker_and_is_not_scored_over_quota(tmp_path, competition, slow_scorer, db):
    truth = load_truth(competition / "private")
    hang = tmp_path / "hang.h5"
    _hanging_hdf5(hang, truth)
    good = tmp_path / "good.npy"
    np.save(good, shifted(truth.y, 3))
    root, tok, _ = make_course(tmp_path, competition, per_day=1, max_invalid_per_day=1, db=db)
    scorer = CountingScorer(slow_scorer)
    with ServerThread(root, scorer=scorer, clock=Clock(), board_interval_s=0) as server:
        def post(token, path):
            with httpx.Client(base_url=server.url, timeout=120) as c:
                r = c.post(f"{API}/submissions", content=path.read_bytes(), headers={"Authorization": f"Bearer {token}"})
                return r.status_code, (r.json().get("error") or {}).get("code") or r.json().get("status"), time.monotonic()

        assert post(tok["alpha"], good)[:2] == (201, "scored")  # alpha's valid file of the day
        scorer.files.clear()
        with concurrent.futures.ThreadPoolExecutor(9) as pool:
            flood = [pool.submit(post, tok["alpha"], hang) for _ in range(8)]
            time.sleep(0.5)  # the flood is in: alpha's first hanging file holds one worker
            honest = pool.submit(post, tok["beta"], good)
            flooded = [f.result() for f in flood]
            beta = honest.result()
    # beta's upload took the free worker: its receipt came before the first of alpha's files was judged.
    assert beta[:2] == (201, "scored")
    assert beta[2] < min(t for _, _, t in flooded)
    # One of alpha's hanging files was scored (its invalid cap's one file); the 7 others were refused
    # before scoring, once alpha's turn came and both its caps were used.
    assert sorted(code for _, code, _ in flooded) == ["invalid"] + ["quota_exceeded"] * 7
    assert sorted(status for status, _, _ in flooded) == [201] + [429] * 7
    assert sum(head.startswith(b"\x89HDF") for head in scorer.files) == 1 and len(scorer.files) == 2


def test_in_flight_uploads_of_a_team_wait_in_order_and_are_bounded():
    async def scenario():
        gate, order = InFlight(per_team=1, max_waiting=2), []

        async def upload(team, i, hold):
            async with gate.slot(team) as (others, waited):
                order.append((team, i, waited))
                await hold.wait()

        holds = [asyncio.Event() for _ in range(4)]
        tasks = [asyncio.create_task(upload("a", i, holds[i])) for i in range(3)]
        await asyncio.sleep(0)
        with pytest.raises(Refusal) as refused:  # a fourth upload of "a" would be the third waiting
            async with gate.slot("a"):
                pass
        other = asyncio.create_task(upload("b", 0, holds[3]))
        await asyncio.sleep(0)
        assert order == [("a", 0, False), ("b", 0, False)]  # another team never waits behind "a"
        tasks[1].cancel()  # a waiting client that gives up leaves the line
        for h in holds:
            h.set()
        await asyncio.gather(*tasks, other, return_exceptions=True)
        assert order == [("a", 0, False), ("b", 0, False), ("a", 2, True)]
        assert gate.active("a") == gate.active("b") == 0
        return refused.value

    refusal = asyncio.run(scenario())
    assert refusal.status == 429 and refusal.code == "too_many_in_flight"


def test_the_course_sets_the_in_flight_limit_and_server_run_overrides_it(tmp_path, competition, scorer):
    from click.testing import CliRunner
    from fastapi.testclient import TestClient

    from brats_kit.cli import main
    from brats_kit.server.app import create_app
    from test_server_support import write_roster

    root = tmp_path / "course"
    result = CliRunner().invoke(main, ["server", "init", str(root), "--competition", str(competition), "--roster",
                                       str(write_roster(tmp_path / "roster.csv")), "--max-inflight-per-team", "3"])
    assert result.exit_code == 0, result.output
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        assert c.app.state.service.quotas.in_flight.per_team == 3
    with TestClient(create_app(root, clock=Clock(), scorer=scorer, max_inflight_per_team=1)) as c:
        assert c.app.state.service.quotas.in_flight.per_team == 1

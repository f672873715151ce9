"""The submission server's API: receipts, quotas, deadline, finals, reveal, audit, export; SQLite and PostgreSQL."""
from __future__ import annotations

import concurrent.futures
import csv
import os
import stat
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select, update

from brats_kit.server.app import create_app
from brats_kit.server.course import Course
from brats_kit.server.db import AuditEvent, Meta, Submission
from brats_kit.server.export import export_submissions
from brats_kit.server.run import ServerThread
from brats_kit.server.verify import audit_course
from data_spec import KitError, load_truth, write_competition
from data_spec.submission import write_submission
from grader.isolation import IsolatedScorer
from test_server_support import Clock, make_course, record_directly, shifted

API = "/api/v1"


@pytest.fixture(scope="module")
def truth(competition):
    return load_truth(competition / "private")


@pytest.fixture(scope="module")
def files(tmp_path_factory, truth):
    """Submissions: perfect, shifted by 3 and 8 pixels, one invalid (0/255), one of the wrong size."""
    d = tmp_path_factory.mktemp("subs")
    out = {}
    for name, y in (("perfect", truth.y), ("shift3", shifted(truth.y, 3)), ("shift8", shifted(truth.y, 8)),
                    ("shift5", shifted(truth.y, 5))):
        out[name] = write_submission(d / f"{name}.npy", y) or d / f"{name}.npy"
    np.save(d / "bad255.npy", truth.y * np.uint8(255))
    out["bad255"] = d / "bad255.npy"
    (d / "short.dat").write_bytes(b"\x00" * 1000)
    out["short"] = d / "short.dat"
    return out


def _client(root, scorer, clock):
    return TestClient(create_app(root, clock=clock, scorer=scorer))


def post(client, token, path, *, raw=False):
    headers = {"Authorization": f"Bearer {token}"}
    data = path.read_bytes()
    if raw:
        return client.post(f"{API}/submissions", content=data, headers=headers)
    return client.post(f"{API}/submissions", files={"file": ("../../etc/passwd", data)}, headers=headers)


def test_init_stores_only_hashes_and_refuses_to_overwrite(tmp_path, competition, db):
    root, tokens, admin = make_course(tmp_path, competition, db=db)
    assert set(tokens) == {"alpha", "beta", "gamma"}
    assert all(len(t) >= 43 for t in tokens.values())  # 256 random bits, url-safe base64
    assert stat.S_IMODE((root / "private" / "tokens.csv").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "private").stat().st_mode) == 0o700
    db_bytes = b"".join(p.read_bytes() for p in (root / "private").glob("course.db*"))
    for token in list(tokens.values()) + [admin]:
        assert token.encode() not in db_bytes
    from brats_kit.server.course import init_course

    with pytest.raises(KitError, match="not empty"):
        init_course(root, competition=competition, roster=tmp_path / "x.csv")


def test_newer_schema_is_refused(tmp_path, competition, db):
    root, _, _ = make_course(tmp_path, competition, db=db)
    with Course(root) as c, c.sessions() as s, s.begin():
        s.execute(update(Meta).where(Meta.key == "schema_version").values(value="99"))
    with pytest.raises(KitError, match="newer"):
        Course(root)


def test_receipts_quotas_days_finals_and_audit(tmp_path, competition, scorer, files, db):
    clock = Clock()
    root, tok, admin = make_course(tmp_path, competition, per_day=2, max_invalid_per_day=1, finals=1, db=db)
    with _client(root, scorer, clock) as c:
        r = post(c, tok["alpha"], files["shift3"])
        assert r.status_code == 201, r.text
        rec = r.json()
        assert rec["team"] == "alpha" and rec["status"] == "scored" and rec["errors"] == []
        assert rec["submitted_at"] == "2026-11-02T09:00:00Z" and rec["remaining_today"] == 1
        assert rec["quota_resets_at"] == "2026-11-03T00:00:00Z"
        assert 0 < rec["public"]["dice"] < 1 and "f1" in rec["public"] and "private" not in rec
        assert rec["sha256"] == __import__("hashlib").sha256(files["shift3"].read_bytes()).hexdigest()
        # An invalid file: the grader's own errors and hints, and its own cap.
        bad = post(c, tok["alpha"], files["bad255"], raw=True)
        assert bad.status_code == 201 and bad.json()["status"] == "invalid"
        err = bad.json()["errors"][0]
        assert err["code"] == "bad_values" and "divide by 255" in err["hint"] and "path" not in err
        assert "tmp" not in bad.text and str(root) not in bad.text
        assert bad.json()["remaining_today"] == 1
        again = post(c, tok["alpha"], files["short"])
        assert again.status_code == 429 and again.json()["error"]["kind"] == "invalid"
        assert post(c, tok["alpha"], files["perfect"]).status_code == 201
        over = post(c, tok["alpha"], files["shift8"])
        assert over.status_code == 429
        assert over.json()["error"]["resets_at"] == "2026-11-03T00:00:00Z" and "retry-after" in over.headers
        clock.advance(days=1)
        assert post(c, tok["alpha"], files["shift8"]).status_code == 201
        assert post(c, tok["beta"], files["shift5"]).status_code == 201
        # Own submissions only; another team's id is a 404, never a 403.
        mine = c.get(f"{API}/submissions", headers={"Authorization": f"Bearer {tok['alpha']}"}).json()
        assert [s["id"] for s in mine["submissions"]] == [1, 2, 3, 4]
        beta_id = 5
        assert c.get(f"{API}/submissions/{beta_id}", headers={"Authorization": f"Bearer {tok['alpha']}"}).status_code == 404
        assert c.get(f"{API}/submissions/999", headers={"Authorization": f"Bearer {tok['alpha']}"}).status_code == 404
        assert c.get(f"{API}/submissions/{beta_id}/file",
                     headers={"Authorization": f"Bearer {tok['alpha']}"}).status_code == 404
        own = c.get(f"{API}/submissions/1/file", headers={"Authorization": f"Bearer {tok['alpha']}"})
        assert own.content == files["shift3"].read_bytes()
        # The board: best public by default; a chosen final replaces it.
        board = c.get(f"{API}/leaderboard").json()
        assert [(r["team"], r["submission"], r["rank"]) for r in board["rows"]] == [("alpha", 3, 1), ("beta", 5, 2)]
        h = {"Authorization": f"Bearer {tok['alpha']}"}
        assert c.put(f"{API}/finals", json={"ids": [1, 4]}, headers=h).status_code == 422  # K = 1
        assert c.put(f"{API}/finals", json={"ids": [2]}, headers=h).status_code == 422  # invalid file
        assert c.put(f"{API}/finals", json={"ids": [5]}, headers=h).status_code == 404  # beta's
        assert c.put(f"{API}/finals", json={"ids": [4]}, headers=h).status_code == 200
        board = c.get(f"{API}/leaderboard").json()
        alpha = next(r for r in board["rows"] if r["team"] == "alpha")
        assert alpha["submission"] == 4 and alpha["selected_by"] == "final"
        assert "private" not in str(board["rows"])
    with Course(root) as course:
        result = audit_course(course)
        assert result["ok"], result["problems"]
        assert result["submissions"] == 5 and result["events"] == 1 + 5 + 1 + 2  # created, 5 uploads, finals, 2 refused (429)


def test_authentication_is_rate_limited_and_headers_are_set(tmp_path, competition, scorer, files, db):
    root, tok, admin = make_course(tmp_path, competition, db=db)
    with _client(root, scorer, Clock()) as c:
        assert c.post(f"{API}/submissions", content=b"x").status_code == 401
        r = c.get(f"{API}/submissions", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        for key in ("content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options"):
            assert key in r.headers
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        # A team token is not the admin token.
        assert c.post(f"{API}/admin/reveal", headers={"Authorization": f"Bearer {tok['alpha']}"}).status_code == 401
        codes = [c.get(f"{API}/submissions", headers={"Authorization": f"Bearer bad{i}"}).status_code
                 for i in range(25)]
        assert 429 in codes
        # The guesser stays throttled; a valid token from the same address still authenticates (issue 20).
        assert c.get(f"{API}/submissions", headers={"Authorization": "Bearer bad-again"}).status_code == 429
        assert c.get(f"{API}/submissions", headers={"Authorization": f"Bearer {tok['alpha']}"}).status_code == 200
        assert c.get("/openapi.json").status_code == 200


def test_size_cap_and_malformed_requests(tmp_path, competition, scorer, files, db):
    root, tok, admin = make_course(tmp_path, competition, db=db)
    h = {"Authorization": f"Bearer {tok['alpha']}"}
    with _client(root, scorer, Clock()) as c:
        cap = c.get(f"{API}/competition").json()["max_bytes"]

        def stream():  # no Content-Length: the cap is enforced while streaming
            for _ in range(cap // (1 << 20) + 2):
                yield b"\x00" * (1 << 20)

        r = c.post(f"{API}/submissions", content=stream(), headers=h)
        assert r.status_code == 413 and r.json()["error"]["max_bytes"] == cap
        r = c.post(f"{API}/submissions", content=b"\x00" * (cap + 1), headers=h)
        assert r.status_code == 413
        assert c.post(f"{API}/submissions", content=b"", headers=h).status_code == 422
        r = c.post(f"{API}/submissions", files={"other": ("a", b"123")}, headers=h)
        assert r.status_code == 422 and "'file'" in r.json()["error"]["message"]
        r = c.post(f"{API}/submissions", content=b"--x\r\n", headers={**h, "content-type": "multipart/form-data"})
        assert r.status_code == 422
        assert c.put(f"{API}/finals", json={"nope": 1}, headers=h).status_code == 422
        assert c.get(f"{API}/submissions", headers=h).json()["submissions"] == []
    course = Course(root)
    assert course.store.temporary_files() == [] and course.store.files() == {}
    course.close()


def test_deadline_and_reveal(tmp_path, competition, scorer, files, db):
    clock = Clock()
    root, tok, admin = make_course(tmp_path, competition, deadline="2026-11-02T10:00:00+01:00", db=db)  # 09:00 UTC
    with _client(root, scorer, clock) as c:
        clock.advance(minutes=-1)
        assert post(c, tok["alpha"], files["shift3"]).status_code == 201
        assert post(c, tok["beta"], files["shift8"]).status_code == 201
        clock.advance(minutes=1)
        late = post(c, tok["alpha"], files["perfect"])
        assert late.status_code == 403 and late.json()["error"]["code"] == "deadline_passed"
        assert c.put(f"{API}/finals", json={"ids": [1]},
                     headers={"Authorization": f"Bearer {tok['alpha']}"}).status_code == 403
        board = c.post(f"{API}/admin/reveal", headers={"Authorization": f"Bearer {admin}"})
        assert board.status_code == 200 and board.json()["revealed"]
        row = board.json()["rows"][0]
        assert {"public_dice", "public_rank", "move", "dice"} <= set(row)
        assert c.post(f"{API}/admin/reveal", headers={"Authorization": f"Bearer {admin}"}).status_code == 409
        mine = c.get(f"{API}/submissions/1", headers={"Authorization": f"Bearer {tok['alpha']}"}).json()
        assert "private" in mine


def _variant_competition(root, competition, truth):
    """The same competition with different private cases (same public cases, same test ids)."""
    y = truth.y.copy()
    priv = ~truth.public
    y[priv] = shifted(y[priv], 11)
    from data_spec import open_split

    test = open_split(competition, "test")
    train = open_split(competition, "train")
    write_competition(root, train={"x": np.asarray(train.x), "y": np.asarray(train.y), "case_id": train.case_id},
                      test={"x": np.asarray(test.x), "y": y, "case_id": truth.case_id, "public": truth.public},
                      attrs={"generator": "tests", "seed": 0}, manifest={"generator": "tests"})
    return root


def test_private_truth_never_shows_before_the_reveal(tmp_path, competition, truth, files):
    other = _variant_competition(tmp_path / "variant", competition, truth)
    assert not np.array_equal(load_truth(other / "private").y, truth.y)
    transcripts = []
    for comp in (competition, other):
        root, tok, admin = make_course(tmp_path, comp, per_day=3, max_invalid_per_day=1)
        clock = Clock()
        with IsolatedScorer(comp / "private", workers=1) as sc, _client(root, sc, clock) as c:
            h = {"Authorization": f"Bearer {tok['alpha']}"}
            seq = [c.get(f"{API}/competition"), post(c, tok["alpha"], files["shift3"]),
                   post(c, tok["alpha"], files["bad255"]), post(c, tok["beta"], files["shift5"]),
                   post(c, tok["alpha"], files["short"]), c.get(f"{API}/submissions", headers=h),
                   c.get(f"{API}/submissions/1", headers=h), c.put(f"{API}/finals", json={"ids": [1]}, headers=h),
                   c.get(f"{API}/leaderboard")]
            transcripts.append([(r.status_code, r.content) for r in seq])
    assert transcripts[0] == transcripts[1]


def test_audit_names_edited_and_deleted_rows_and_missing_files(tmp_path, competition, scorer, files, db):
    root, tok, admin = make_course(tmp_path, competition, db=db)
    with _client(root, scorer, Clock()) as c:
        for name in ("shift3", "shift5", "shift8"):
            assert post(c, tok["alpha"], files[name]).status_code == 201
    course = Course(root)
    try:
        assert audit_course(course)["ok"]
        with course.sessions() as s, s.begin():  # a quiet edit of a score's trail
            s.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(team="beta"))
        problems = audit_course(course)["problems"]
        assert any("entry 2" in p for p in problems)
        with course.sessions() as s, s.begin():
            s.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(team="alpha"))
        assert audit_course(course)["ok"]
        with course.sessions() as s, s.begin():
            s.execute(update(Submission).where(Submission.id == 2).values(sha256="0" * 64))
        assert any("submission 2" in p for p in audit_course(course)["problems"])
        with course.sessions() as s, s.begin():
            s.execute(delete(AuditEvent).where(AuditEvent.seq == 4))  # the last entry
        assert any("head" in p for p in audit_course(course)["problems"])
        with course.sessions() as s, s.begin():
            s.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
        assert any("missing" in p for p in audit_course(course)["problems"])
        sha = course.store.files()
        next(iter(sha.values())).unlink()
        assert any("missing from the store" in p for p in audit_course(course)["problems"])
    finally:
        course.close()


def test_quota_is_exact_under_concurrent_uploads(tmp_path, competition, scorer, files, db):
    root, tok, admin = make_course(tmp_path, competition, per_day=3, db=db)
    datas = [files[k].read_bytes() for k in ("shift3", "shift5", "shift8", "perfect")]
    with ServerThread(root, scorer=scorer, clock=Clock()) as server:
        def one(i):
            with httpx.Client(base_url=server.url, timeout=60) as client:
                return client.post(f"{API}/submissions", content=datas[i % 4],
                                   headers={"Authorization": f"Bearer {tok['gamma']}"}).status_code

        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            codes = list(pool.map(one, range(10)))
    assert sorted(codes) == [201] * 3 + [429] * 7
    with Course(root) as course, course.sessions() as s:
        rows = s.scalars(select(Submission)).all()
        assert len(rows) == 3
        assert audit_course(course)["ok"]
        # The files of the refused uploads went again; the accepted ones stay.
        assert set(course.store.files()) == {r.sha256 for r in rows}
        assert course.store.temporary_files() == []


def test_export_reproduces_the_servers_board(tmp_path, competition, scorer, files, db):
    from grader.leaderboard import build_leaderboard

    clock = Clock()
    root, tok, admin = make_course(tmp_path, competition, per_day=5, finals=1, db=db)
    with _client(root, scorer, clock) as c:
        for team, names in (("alpha", ["shift8", "shift3", "bad255"]), ("beta", ["shift5", "perfect"]),
                            ("gamma", ["shift3", "shift8"])):
            for name in names:
                assert post(c, tok[team], files[name]).status_code == 201
                clock.advance(minutes=7)
        c.put(f"{API}/finals", json={"ids": [4]}, headers={"Authorization": f"Bearer {tok['beta']}"})
        server_board = c.get(f"{API}/leaderboard").json()["rows"]
    with Course(root) as course:
        info = export_submissions(course, tmp_path / "SUBMISSIONS")
        assert info["submissions"] == 7
        # A second export replaces its own output; a foreign folder is refused.
        export_submissions(course, tmp_path / "SUBMISSIONS")
        (tmp_path / "foreign").mkdir()
        (tmp_path / "foreign" / "x").write_text("x")
        with pytest.raises(KitError):
            export_submissions(course, tmp_path / "foreign")
    build_leaderboard(tmp_path / "SUBMISSIONS", competition / "private", tmp_path / "site", bootstrap=0)
    with open(tmp_path / "site" / "leaderboard.csv", newline="", encoding="utf-8") as fh:
        offline = [r for r in csv.DictReader(fh) if r["kind"] == "team"]
    assert [(r["team"], int(r["rank"])) for r in offline] == [(r["team"], r["rank"]) for r in server_board]
    for off, srv in zip(offline, server_board):
        assert off["submission"].startswith(f"{srv['submission']:06d}-")
        assert float(off["public_dice"]) == pytest.approx(srv["dice"], abs=5e-5)
        assert off["submitted_at"] == srv["submitted_at"] and off["selected_by"] == srv["selected_by"]


def test_startup_fixes_exposed_private_files_and_removes_leftovers(tmp_path, competition, scorer, files):
    root, tok, admin = make_course(tmp_path, competition)
    os.chmod(root / "private" / "tokens.csv", 0o644)
    leftover = root / "store" / "tmp" / "upload-x.tmp"
    leftover.write_bytes(b"half")
    with _client(root, scorer, Clock()) as c:
        assert c.get(f"{API}/competition").status_code == 200
    assert stat.S_IMODE((root / "private" / "tokens.csv").stat().st_mode) == 0o600
    assert not leftover.exists()


def test_library_client_on_a_background_server_with_a_simulated_clock(tmp_path, competition, scorer, files):
    """What the demo calls: start_server(course, clock=...) on loopback and submit(file, url, token)."""
    from brats_kit.server import start_server, submit
    from brats_kit.server.client import SubmissionRefused
    from grader.errors import InvalidSubmissionError

    clock = Clock()
    root, tok, admin = make_course(tmp_path, competition, per_day=1)
    server = start_server(root, clock=clock, scorer=scorer)
    try:
        receipt = submit(files["shift3"], server.url, tok["alpha"])
        assert receipt.ok and receipt.remaining_today == 0 and receipt.submitted_at == "2026-11-02T09:00:00Z"
        with pytest.raises(InvalidSubmissionError) as info:
            submit(files["bad255"], server.url, tok["alpha"])
        assert info.value.errors[0].code == "bad_values"
        invalid = submit(files["bad255"], server.url, tok["alpha"], validate=False)  # the server's own verdict
        assert invalid.status == "invalid" and not invalid.ok
        with pytest.raises(SubmissionRefused) as refused:
            submit(files["perfect"], server.url, tok["alpha"])
        assert refused.value.status == 429 and "resets" in refused.value.hint
        clock.advance(days=1)
        assert submit(files["perfect"], server.url, tok["alpha"]).submitted_at == "2026-11-03T09:00:00Z"
        with pytest.raises(SubmissionRefused) as bad_token:
            submit(files["perfect"], server.url, "wrong")
        assert bad_token.value.status == 401
    finally:
        server.stop()


def test_init_with_baselines_attaches_valid_ones_and_refuses_an_invalid_one(tmp_path, competition, truth):
    """`server init --baselines`: valid references are scored and kept under private/; an invalid one
    stops the command before any course folder exists (exit 1)."""
    import json

    from click.testing import CliRunner

    from brats_kit.cli import main
    from test_server_support import write_roster

    roster = write_roster(tmp_path / "roster.csv")
    good = tmp_path / "good"
    write_submission(good / "all-empty" / "test_data_ypred.dat", np.zeros_like(truth.y))
    write_submission(good / "perfect" / "test_data_ypred.dat", truth.y)
    args = ["server", "init", "--competition", str(competition), "--roster", str(roster)]
    ok = CliRunner().invoke(main, args + [str(tmp_path / "course"), "--baselines", str(good), "--json"])
    assert ok.exit_code == 0, ok.output
    attached = json.loads(ok.stdout)["baselines"]
    assert set(attached) == {"all-empty", "perfect"} and attached["perfect"] == 1.0 and attached["all-empty"] < 1.0
    assert (tmp_path / "course" / "private" / "baselines").is_dir()

    bad = tmp_path / "bad"
    (bad / "broken").mkdir(parents=True)
    (bad / "broken" / "test_data_ypred.dat").write_bytes(b"\x01" * 1000)
    refused = CliRunner().invoke(main, args + [str(tmp_path / "course2"), "--baselines", str(bad)])
    assert refused.exit_code == 1 and "broken" in refused.output
    assert not (tmp_path / "course2").exists()


@pytest.mark.parametrize("idle_ping_s, survives", [(0.0, True), (3600.0, False)])
def test_an_idle_postgresql_connection_is_tested_before_use(pg_cluster, monkeypatch, idle_ping_s, survives):
    """After the database dropped the pool's connections (a restart), an idle one is replaced, not used."""
    import brats_kit.server.db as db_module
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    monkeypatch.setattr(db_module, "IDLE_PING_S", idle_ping_s)
    engine = db_module.make_engine(pg_cluster.new_database())
    try:
        with engine.connect() as conn:
            mine = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with engine.connect() as conn:  # the same pooled connection, tested or not
            killer = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        assert killer == mine
        other = db_module.make_engine(str(engine.url))
        with other.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": mine}).scalar()
        other.dispose()
        if survives:
            with engine.connect() as conn:
                assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != mine
        else:  # the control: without the test, the dead connection is used and the request fails once
            with pytest.raises(DBAPIError), engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            with engine.connect() as conn:  # the pool was renewed
                assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_concurrent_uploads_are_recorded_in_shared_transactions_and_stay_exact(tmp_path, competition, scorer, files,
                                                                               db):
    from brats_kit.server.service import CourseService, Refusal

    root, tok, admin = make_course(tmp_path, competition, per_day=2, db=db)
    valid = [files[k] for k in ("perfect", "shift3", "shift5", "shift8")]
    with Course(root) as course:
        service = CourseService(course, clock=Clock())
        sizes, held = [], threading.Event()
        record_batch = service.recorder._record_batch

        def observed(batch):
            sizes.append(len(batch))
            if not held.is_set():  # the first transaction is slow: the others queue up behind it
                held.set()
                time.sleep(0.5)
            record_batch(batch)

        service.recorder._record_batch = observed

        def one(i):
            try:
                return record_directly(service, course, ("alpha", "beta", "gamma")[i % 3], valid[i // 3], scorer)
            except Refusal as exc:
                return exc

        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            results = list(pool.map(one, range(12)))
        assert sum(sizes) == 12 and max(sizes) > 1  # some uploads shared a transaction
        receipts = [r for r in results if isinstance(r, dict)]
        refusals = [r for r in results if isinstance(r, Refusal)]
        assert len(receipts) == 6 and {r.code for r in refusals} == {"quota_exceeded"} and len(refusals) == 6
        assert sorted(r["team"] for r in receipts) == ["alpha", "alpha", "beta", "beta", "gamma", "gamma"]
        assert len({r["id"] for r in receipts}) == 6
        with course.sessions() as s:
            rows = s.scalars(select(Submission)).all()
        assert sorted(r.id for r in rows) == sorted(r["id"] for r in receipts)
        assert audit_course(course)["ok"]
        assert set(course.store.files()) == {r.sha256 for r in rows}

        # A transaction that fails records nothing of its batch, and every upload of it is told.
        def failing(*args):
            raise RuntimeError("the database went away")

        service.recorder._insert = failing
        with pytest.raises(RuntimeError, match="went away"):
            record_directly(service, course, "alpha", files["bad255"], scorer)
        with course.sessions() as s:
            assert len(s.scalars(select(Submission)).all()) == 6
        assert audit_course(course)["ok"] and set(course.store.files()) == {r.sha256 for r in rows}


@pytest.mark.parametrize("n_teams", [3, 30])
def test_status_runs_the_same_number_of_queries_whatever_the_number_of_teams(tmp_path, competition, scorer, files,
                                                                               db, n_teams):
    from sqlalchemy import event

    from brats_kit.server.service import CourseService

    teams = tuple(f"team{i:02d}" for i in range(n_teams))
    root, tok, admin = make_course(tmp_path, competition, teams=teams, per_day=5, db=db)
    clock = Clock()
    with Course(root) as course:
        service = CourseService(course, clock=clock)
        record_directly(service, course, "team00", files["shift3"], scorer)
        record_directly(service, course, "team00", files["bad255"], scorer)
        clock.advance(days=1)
        record_directly(service, course, "team01", files["shift8"], scorer)
        statements = []

        def count(conn, cursor, statement, *args):
            statements.append(statement)

        event.listen(course.engine, "before_cursor_execute", count)
        try:
            status = service.status()
        finally:
            event.remove(course.engine, "before_cursor_execute", count)
        # The teams, their uploads per status (all time, today, last), the reveal and the refused uploads:
        # never one query per team.
        assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 4, statements
        rows = {r["team"]: r for r in status["teams"]}
        assert len(rows) == n_teams and status["submissions"] == 3
        assert {k: rows["team00"][k] for k in ("scored", "invalid", "today_scored", "today_invalid")} == {
            "scored": 1, "invalid": 1, "today_scored": 0, "today_invalid": 0}
        assert {k: rows["team01"][k] for k in ("scored", "invalid", "today_scored", "today_invalid")} == {
            "scored": 1, "invalid": 0, "today_scored": 1, "today_invalid": 0}
        assert rows["team01"]["last_activity"] == clock().isoformat().replace("+00:00", "Z")
        assert rows["team00"]["last_activity"] < rows["team01"]["last_activity"]
        assert rows["team02"] == {"team": "team02", "scored": 0, "invalid": 0, "today_scored": 0,
                                  "today_invalid": 0, "over_quota": 0, "refused_late": 0, "today_refused": 0,
                                  "last_activity": None}


def test_openapi_names_the_model_of_every_answer(tmp_path, competition, scorer, files):
    root, tok, admin = make_course(tmp_path, competition)
    with _client(root, scorer, Clock()) as c:
        spec = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200
        models = set(spec["components"]["schemas"])
        assert {"Competition", "Receipt", "SubmissionList", "Finals", "Leaderboard", "BoardRow", "Status",
                "TeamStatus", "ErrorBody"} <= models

        def answer(path, method, code):
            content = spec["paths"][path][method]["responses"][code]["content"]["application/json"]["schema"]
            return content["$ref"].rsplit("/", 1)[-1]

        assert answer(f"{API}/competition", "get", "200") == "Competition"
        assert answer(f"{API}/submissions", "post", "201") == "Receipt"
        assert answer(f"{API}/submissions", "get", "200") == "SubmissionList"
        assert answer(f"{API}/submissions/{{sub_id}}", "get", "200") == "Receipt"
        assert answer(f"{API}/finals", "put", "200") == "Finals"
        assert answer(f"{API}/leaderboard", "get", "200") == "Leaderboard"
        assert answer(f"{API}/admin/reveal", "post", "200") == "Leaderboard"
        assert answer(f"{API}/admin/status", "get", "200") == "Status"
        assert answer(f"{API}/submissions", "post", "429") == "ErrorBody"
        # The models describe; they do not reshape: a receipt before the reveal still has no 'private' key,
        # and a quota field appears on the upload's own receipt only.
        receipt = post(c, tok["alpha"], files["shift3"]).json()
        assert "private" not in receipt and receipt["remaining_today"] == 4
        listed = c.get(f"{API}/submissions", headers={"Authorization": f"Bearer {tok['alpha']}"}).json()
        assert "private" not in listed["submissions"][0] and "remaining_today" not in listed["submissions"][0]
        assert set(listed["submissions"][0]["public"]) == set(receipt["public"])

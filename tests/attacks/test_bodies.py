"""Attacks by body size outside the upload: every form and JSON body is capped while it streams."""
from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient

from brats_kit.server.app import BODY_CAP, BodyLimit, create_app
from test_server_support import Clock, make_course

API = "/api/v1"
MB = 1 << 20


def _drive(middleware_app, scope, chunks: int, chunk: bytes):
    """Run an ASGI app on a body of ``chunks`` messages; return (pulled messages, status sent, app reached)."""
    pulled, sent, reached = [0], [], []

    async def receive():
        pulled[0] += 1
        return {"type": "http.request", "body": chunk, "more_body": pulled[0] < chunks}

    async def send(message):
        sent.append(message)

    async def inner(scope, receive, send):
        reached.append(True)
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    asyncio.run(middleware_app(inner)(scope, receive, send))
    return pulled[0], sent[0]["status"], bool(reached)


def test_forty_mb_forms_are_cut_off_at_the_cap():
    scope = {"type": "http", "method": "POST", "path": "/signin",
             "headers": [(b"content-type", b"application/x-www-form-urlencoded")]}
    for _ in range(2):  # two anonymous 40 MB posts: each stops being read just past the cap
        pulled, status, reached = _drive(lambda a: BodyLimit(a), scope, 40, b"x" * MB)
        assert (pulled, status, reached) == (1, 413, False)
        pulled, status, reached = _drive(lambda a: BodyLimit(a), scope, 40 * 1024, b"x" * 1024)
        assert (pulled, status, reached) == (BODY_CAP // 1024 + 1, 413, False)
    # A declared Content-Length over the cap: refused before a byte is read.
    declared = dict(scope, headers=[(b"content-length", str(40 * MB).encode())])
    assert _drive(lambda a: BodyLimit(a), declared, 40, b"x" * MB) == (0, 413, False)
    # A body under the cap reaches the application whole; the upload route streams its own.
    assert _drive(lambda a: BodyLimit(a), scope, 8, b"x" * 1024) == (8, 204, True)
    upload = dict(scope, path="/team/upload")
    assert _drive(lambda a: BodyLimit(a, streamed={("POST", "/team/upload")}), upload, 40, b"x" * MB) == (40, 204, True)


def test_the_application_caps_forms_and_json(tmp_path, competition, scorer):
    root, tok, _ = make_course(tmp_path, competition)
    with TestClient(create_app(root, clock=Clock(), scorer=scorer)) as c:
        form = {"content-type": "application/x-www-form-urlencoded"}
        r = c.post("/signin", content=b"a=" + b"x" * (40 * MB), headers=form)
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        h = {"Authorization": f"Bearer {tok['alpha']}"}
        assert c.put(f"{API}/finals", content=b"[" + b"1," * BODY_CAP + b"1]", headers=h).status_code == 413
        assert c.put(f"{API}/finals", json={"ids": []}, headers=h).status_code == 200
        # A small form goes through to the page (which then refuses it for its own reason: no CSRF token).
        assert c.post("/signin", data={"token": "x"}).status_code != 413

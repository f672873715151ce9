"""Helpers of the attack suite (no test here): signing in through the pages' own forms."""
from __future__ import annotations

import html
import re

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page) -> str:
    return html.unescape(CSRF.search(page.text).group(1))


def sign_in(client, token, role="team"):
    csrf = csrf_of(client.get("/"))
    return client.post("/signin", data={"csrf": csrf, "token": token, "role": role}, follow_redirects=False)

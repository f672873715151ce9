"""The demo's code track: one team packages a trained model as a code submission, tries it with ``code run``,
hands it in, and the server scores it in the sandbox on the hidden test slices."""
from __future__ import annotations

import time
from pathlib import Path

#: The simulated team that hands in code (its own course: the code track's).
CODE_TEAM = "code-crafters"
#: The team's ``submission.py``: the kit's own foreground rule, a skops model beside it.
SUBMISSION_PY = '''"""Our code submission: a logistic regression on each foreground pixel's 4 values."""
import numpy as np
import skops.io as sio

from starter import foreground_mask

# Our own model, so we trust the types it names.
MODEL = sio.load("model.skops", trusted=sio.get_untrusted_types(file="model.skops"))


def predict(x):
    fg = foreground_mask(x)
    y = np.zeros(x.shape[:3], dtype=np.uint8)
    y[fg] = MODEL.predict(x[fg]).astype(np.uint8)
    return y
'''


def package_model(competition, out: Path, *, seed: int = 0) -> Path:
    """Train a small pixel model on the training split and package it as a code submission folder ``out``.

    What the starter notebook's last step shows: ``submission.py`` beside ``model.skops``.
    """
    import numpy as np
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    from starter import balanced_index, foreground_mask, load_split, pixel_vectors

    x, y, _ = load_split(competition, "train")
    x, y = np.asarray(x), np.asarray(y)
    index = balanced_index(y, foreground_mask(x), neg_ratio=2, max_vectors=20_000, seed=seed)
    X, labels, _ = pixel_vectors(x, y, index=index)
    model = LogisticRegression(max_iter=200).fit(X, labels)
    out.mkdir(parents=True, exist_ok=True)
    sio.dump(model, out / "model.skops")
    (out / "submission.py").write_text(SUBMISSION_PY, encoding="utf-8")
    return out


def play_code_track(competition: Path, out: Path, *, roster: Path, seed: int = 0, log=print) -> dict:
    """One team through the code track: package, ``code run`` at home, ``submit``, the job scored on hidden slices.

    ``roster`` names :data:`CODE_TEAM`; the course is made under ``out/code-course``.

    Returns
    -------
    dict
        ``status`` (``scored``, or ``skipped`` with its ``reason`` where this machine can make
        no sandbox), ``at_home`` (the ``code run`` record), ``job`` (the server's view of the job).
    """
    from grader.code import code_run, sandbox_problem

    problem = sandbox_problem()
    if problem:
        log(f"    code track skipped: {problem} (student code never runs unsandboxed)")
        return {"status": "skipped", "reason": problem}
    from brats_kit.server import init_course, start_server
    from brats_kit.server.client import list_code_jobs, submit_code
    from brats_kit.server.course import read_tokens
    from brats_kit.server.jobs import check_code_track, enable_code_track
    from grader.code.users import current_user_name
    from grader.errors import CodeUserError

    code = package_model(competition, out / "code-submission", seed=seed)
    at_home = code_run(code, competition, out / "code-run-pred.dat")
    at_home.pop("log", None)
    course = out / "code-course"
    try:
        code_cfg = check_code_track(competition, time_limit=120, memory_mb=2048)
    except CodeUserError as exc:  # a Python under /root: the demo's own jobs run as its own user, and says so
        log(f"    code jobs run as {current_user_name()}, not an unprivileged user: {exc.message}")
        code_cfg = check_code_track(competition, time_limit=120, memory_mb=2048, user=current_user_name())
    info = init_course(course, competition=competition, roster=roster, per_day=5, workers=1)
    enable_code_track(course, code_cfg)
    token = read_tokens(info["tokens"])[CODE_TEAM]
    with start_server(course, board_interval_s=0) as server:
        receipt = submit_code(code, server.url, token)
        deadline = time.monotonic() + code_cfg.time_limit + 60
        job = receipt
        while job["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = next(j for j in list_code_jobs(server.url, token) if j["id"] == receipt["id"])
    dice = (job.get("public") or {}).get("dice")
    log(f"    team {CODE_TEAM} packaged its model (submission.py + model.skops), ran 'code run' at home "
        f"({at_home['status']}), handed it in ({receipt['status']} at once): {job['status']} on the hidden slices"
        + (f", public Dice {dice:.3f}" if dice is not None else ""))
    return {"status": job["status"], "at_home": at_home, "job": job, "course": course}

"""``server export``: the course's submissions as a folder the offline leaderboard reads.

``SUBMISSIONS/<team>/<id>-<sha256 prefix>.<ext>`` and ``manifest.csv`` (team, file,
submitted_at from the server's clock, final), so that ``brats-kit leaderboard``
reproduces the server's board: the same selection rule, the same scores.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from sqlalchemy import select

from data_spec.errors import BadArgumentError, KitError
from data_spec.manifest import MANIFEST_CSV, write_manifest
from plumbing.atomic import atomic_dir

from .course import Course
from .db import Submission, Team, kept_predictions
from .service import export_name
from .tracks import CODE, FILE, check_track, track_of


def export_submissions(course: Course, out, track: str = FILE) -> dict:
    """Write every submission of ``track`` (scored and invalid) and the manifest under ``out``, all or nothing.

    ``file`` (the default) is what ``brats-kit leaderboard`` ranks on the test truth; ``code``
    what it ranks on the hidden truth (``--truth COMPETITION/private/hidden_test.h5``): each scored
    job's kept prediction (``.npy``), and the archive of every other code row (invalid as a
    prediction, so counted invalid, as the server counts it). A job scored before predictions
    were kept has none: its archive is written, and the offline board counts it invalid.

    Refuses an ``out`` that exists and was not made by a previous export (it must
    then hold only team folders and ``manifest.csv``).
    """
    out, track = Path(out), check_track(track)
    if out.exists():
        if not out.is_dir() or not (out / MANIFEST_CSV).is_file():
            raise KitError("the output folder exists and is not a previous export", code="exists", path=out,
                           hint="give a new folder: export replaces only its own output")
        if out.resolve() in (course.root.resolve(), *course.root.resolve().parents):
            raise BadArgumentError("the output folder contains the course", path=out)
    with course.sessions() as s:
        rows = s.execute(select(Submission, Team.name).join(Team, Team.id == Submission.team_id)
                         .order_by(Submission.id)).all()
        predictions = kept_predictions(s) if track == CODE else {}
    rows = [(sub, team) for sub, team in rows if track_of(sub.format) == track]
    manifest, teams = [], set()
    with atomic_dir(out) as tmp:
        for sub, team in rows:
            kept = predictions.get(sub.id)
            src = course.store.path(kept or sub.sha256)
            if not src.is_file():
                raise KitError(f"submission {sub.id} has no stored file", code="missing_file", path=src,
                               hint="run 'brats-kit server audit'")
            dest = tmp / team / (f"{sub.id:06d}-{kept[:12]}.npy" if kept else export_name(sub))
            dest.parent.mkdir(exist_ok=True)
            shutil.copyfile(src, dest)
            os.chmod(dest, 0o644)
            manifest.append((team, dest.name, sub.submitted_at, True if sub.final else None))
            teams.add(team)
        write_manifest(tmp / MANIFEST_CSV, manifest)
    return {"out": out, "submissions": len(rows), "teams": len(teams), "manifest": out / MANIFEST_CSV}

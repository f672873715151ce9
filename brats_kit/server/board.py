"""The live public board: the offline leaderboard's site, built from what the server recorded.

After the course changes (an accepted or invalid submission, a finals choice, the
reveal: anything that appends to the audit log) a background thread rebuilds the
site with the engine's second step, :func:`grader.leaderboard.build.rank_and_publish`,
fed with the entries the database holds (:func:`recorded_entries`): each upload's
status, errors, scores and per-case counts, stored when the scoring worker gave its
verdict. Nothing in the store is read, hashed or validated again; only the
course's baselines (files the server never scored) go through the score cache under
``private/board/cache``. So the page a student reads is the engine's: the one ranking,
intervals, ties, history, invalid files. The public phase is built until the reveal,
the private one after it; nothing private is written to the site before (the
engine's own guarantee). Team folders are the roster's team names, so the page shows
display names only. :func:`export_for_board` writes the same submissions as a folder
(hard links into the store): ``brats-kit leaderboard`` on it reproduces the live
board byte for byte (``tests/test_live_board.py``).

Rebuilds are throttled: at most one per ``interval_s`` seconds (and the thread
rests three times as long as its last rebuild took, see ``benchmarks/live_board.py``),
and a burst of uploads between two rebuilds is coalesced into one. An upload never
waits for a rebuild: the thread polls the audit log's length (one cheap query), which
also sees changes made by another process (``brats-kit server reveal``). The build
itself runs in a child process at a lower priority (:data:`NICENESS`), which loads the
truth once (:func:`board_truth`): it holds neither the server's interpreter lock nor a
core the requests need. The child is killed when the server stops; the engine swaps
the site in whole (``atomic_dir``), so a killed build leaves the last site as it was.

Replicas (``server run --replica``) share the course folder: exactly one of them
builds, the one holding the course's builder lock (a PostgreSQL session-level advisory
lock, :func:`~.shared.board_lock`); the others try to take it at every poll, so one of
them takes over within a poll of the builder's death (its connection ends, its lock
with it). Every replica serves the site from the shared folder, read at each request
(swapped in whole), so none serves an older board than the last one published; the
builder records what it published (``board_built`` in the database's ``meta``), which
the others follow (:meth:`LiveBoard.wait_current` works on each of them).

The course configuration may set ``extra.board_interval_s`` (seconds, default
:data:`DEFAULT_INTERVAL_S`; 0 turns the live board off) and ``extra.baselines`` (a
folder of reference submissions shown as reference rows; by default
``private/baselines``, see :mod:`.baselines`).
"""
from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Optional

from pebble import ProcessPool
from sqlalchemy import func, select

from data_spec.errors import KitError
from data_spec.manifest import MANIFEST_CSV, write_manifest
from plumbing.atomic import atomic_dir

from data_spec import Truth
from grader.counts import Counts
from grader.leaderboard.ranking import masks_for, ranking_type

from .baselines import baselines_of, owner_only, score_baselines
from .course import Course
from .db import AuditEvent, Submission, Team, get_meta, kept_predictions, set_meta
from .service import EXTENSIONS, CourseService, check_mask_scores
from .shared import board_lock
from .tracks import CODE, FILE, board_truth, hidden_truth_of

log = logging.getLogger("brats_kit.server.board")

BOARD_DIR = "board"
#: Seconds between two rebuilds at most once (bursts of uploads coalesce into one rebuild).
DEFAULT_INTERVAL_S = 10.0
#: After a rebuild the thread waits at least this many times its duration (at most a quarter of a core).
IDLE_RATIO = 3.0
#: How often the thread looks at the audit log between rebuilds.
POLL_S = 1.0
#: Niceness of the rebuild's process: below the server's requests and scoring workers.
NICENESS = 10
TITLE = "Leaderboard"
#: The code track's board: its own site (under ``private/board/code/``), title and address.
CODE_DIR, CODE_TITLE, CODE_URL = "code", "Leaderboard: code track", "/leaderboard/code/"


class _Stopped(Exception):
    """The server is stopping: the rebuild in progress is abandoned (the previous site stays)."""


def course_version(course: Course) -> int:
    """The audit log's last sequence number: it grows with every change the board shows."""
    with course.sessions() as s:
        return int(s.scalar(select(func.max(AuditEvent.seq))) or 0)


def board_name(sub: Submission) -> str:
    """A submission's file name on the public board: its id only.

    Not :func:`~.service.export_name`: a hash prefix on a public page would show two
    teams handing in the same file, which only the instructor's dashboard may tell.
    """
    return f"{sub.id:06d}.{EXTENSIONS.get(sub.format, 'bin')}"


def _link(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:  # another file system, or links not allowed: a copy (owner-only, like the store)
        shutil.copyfile(src, dest)
        os.chmod(dest, 0o600)


def export_for_board(course: Course, out: Path, track: str = FILE) -> dict:
    """The live board's submissions of ``track`` as a folder (hard links into the store, the board's names, a manifest).

    ``brats-kit leaderboard`` on it (``--title Leaderboard``, the course's baselines) writes the live board
    byte for byte: the check that the server ranks what the offline engine would. Written whole; returns
    ``version``, ``revealed`` and ``submissions``, read in one database session so that they agree.
    The code track's (on the hidden truth, ``--title`` of :data:`CODE_TITLE`): a scored job's kept
    prediction under its board name, the archive of any other code row (counted invalid, as on the server).
    """
    with course.sessions() as s:
        version = int(s.scalar(select(func.max(AuditEvent.seq))) or 0)
        revealed = get_meta(s, "revealed") == "yes"
        rows = [(sub, entry.team) for entry, sub in CourseService.board_entries(s, name=board_name, track=track)]
        predictions = kept_predictions(s) if track == CODE else {}
    manifest = []
    with atomic_dir(out) as tmp:
        os.chmod(tmp, 0o700)
        for sub, team in rows:
            src = course.store.path(predictions.get(sub.id, sub.sha256))  # a scored code job: its prediction
            if src.is_file():  # else the engine lists the manifest row as a missing file (`server audit` says why)
                folder = tmp / team
                folder.mkdir(mode=0o700, exist_ok=True)
                _link(src, folder / board_name(sub))
            manifest.append((team, board_name(sub), sub.submitted_at, True if sub.final else None))
        write_manifest(tmp / MANIFEST_CSV, manifest)
        os.chmod(tmp / MANIFEST_CSV, 0o600)
    os.chmod(out, 0o700)
    return {"version": version, "revealed": revealed, "submissions": len(rows)}


def recorded_entries(course: Course, truth: Truth, track: str = FILE) -> tuple:
    """What the server recorded for ``track``, as the engine's entries: ``(version, revealed, entries)``.

    One database session; ``truth`` is the track's own (:func:`board_truth`).

    Each scored submission brings the scores, per-case counts and per-case mask scores its
    upload stored: no file of the store is read, hashed or validated again. A course ranked by
    a mask score is refused (``missing_scores``) while a scored submission lacks its values.
    """
    with course.sessions() as s:
        version = int(s.scalar(select(func.max(AuditEvent.seq))) or 0)
        revealed = get_meta(s, "revealed") == "yes"
        pairs = CourseService.board_entries(s, name=board_name, track=track)
    for entry, row in pairs:
        if entry.valid:
            entry.counts = stored_counts(row, truth)
    entries = [entry for entry, _ in pairs]
    check_mask_scores(entries, truth, ranking_type(course.config.ranking))
    return version, revealed, entries


def stored_counts(row: Submission, truth: Truth) -> Counts:
    """The per-case counts a scored submission's upload stored; refused if they do not fit the course's truth.

    Raises
    ------
    KitError
        ``stale_counts``: no counts, or counts of another number of cases (the truth file was
        replaced after the uploads): the board is not built from them.
    """
    record = row.counts or {}
    if any(len(record.get(k) or ()) != len(truth) for k in ("tp", "fp", "fn")):
        raise KitError(f"submission {row.id} has no per-case counts for the {len(truth)} cases of the course's truth",
                       code="stale_counts", path=truth.path,
                       hint="the truth changed after the uploads: put the original back (brats-kit server audit)")
    return Counts.from_record(record, truth)


#: The live board's way back: a visitor signs in there and lands on the team page.
BOARD_LINKS = (("Sign in", "/"), ("Your team page", "/team"))
#: Each board's link to the other track's, on a course with the code track.
TRACK_LINKS = {FILE: ("Code track board", CODE_URL), CODE: ("File track board", "/leaderboard")}


def board_page(course: Course, track: str = FILE) -> dict:
    """What the live board's page adds to the engine's: every roster team, links back, counts of invalid files."""
    with course.sessions() as s:
        roster = tuple(s.scalars(select(Team.name).order_by(Team.name)))
    links = BOARD_LINKS + ((TRACK_LINKS[track],) if hidden_truth_of(course.config) else ())
    return {"roster": roster, "links": links, "problem_files": False}


def site_of(course: Course, track: str = FILE) -> Path:
    """Where ``track``'s board is built (``private/board/site``, the code track's under ``board/code/``)."""
    work = course.private / BOARD_DIR
    return (work / CODE_DIR if track == CODE else work) / "site"


def build_board(course: Course, *, bootstrap: int = 2000, seed: int = 0, should_stop=lambda: False) -> dict:
    """Build the site once, in the calling thread, from the counts stored at upload.

    Returns ``version``, ``revealed``, ``submissions`` and the engine's summary. Only the
    baselines (files the server never scored) go through the score cache.
    """
    from grader.leaderboard.build import Entries, rank_and_publish

    work = course.private / BOARD_DIR
    work.mkdir(mode=0o700, exist_ok=True)
    truth = board_truth(course.config.truth)
    version, revealed, subs = recorded_entries(course, truth)
    if should_stop():
        raise _Stopped()
    source = baselines_of(course)
    ranking = ranking_type(course.config.ranking)
    bases = score_baselines(truth, source, work / "cache", masks_for(ranking))[0] if source is not None else []
    summary = rank_and_publish(Entries(subs, bases), truth, site_of(course), reveal=revealed, bootstrap=bootstrap,
                               seed=seed, title=TITLE, ranking=ranking.name, **board_page(course))
    owner_only(site_of(course))  # the site lives under private/, which the startup check keeps owner-only
    done = {"version": version, "revealed": revealed, "submissions": len(subs), "summary": summary}
    hidden = hidden_truth_of(course.config)
    if hidden:
        done[CODE] = build_code_board(course, hidden, bootstrap=bootstrap, seed=seed, should_stop=should_stop)
    return done


def build_code_board(course: Course, hidden, *, bootstrap: int = 2000, seed: int = 0,
                     should_stop=lambda: False) -> dict:
    """The code track's board: its rows ranked on the hidden truth, without baselines (files of the test slices)."""
    from grader.leaderboard.build import Entries, rank_and_publish

    (course.private / BOARD_DIR / CODE_DIR).mkdir(mode=0o700, parents=True, exist_ok=True)
    truth = board_truth(hidden, CODE)
    version, revealed, subs = recorded_entries(course, truth, CODE)
    if should_stop():
        raise _Stopped()
    site = site_of(course, CODE)
    summary = rank_and_publish(Entries(subs, []), truth, site, reveal=revealed, bootstrap=bootstrap, seed=seed,
                               title=CODE_TITLE, ranking=course.config.ranking, **board_page(course, CODE))
    owner_only(site)
    return {"version": version, "revealed": revealed, "submissions": len(subs), "summary": summary}


#: The ``meta`` fact holding the last published board's version and reveal: ``"VERSION yes|no"``.
BUILT_FACT = "board_built"


def record_built(course: Course, version: int, revealed: bool) -> None:
    """Record (for the other replicas) that the site of ``version`` is published."""
    with course.sessions() as s, s.begin():
        set_meta(s, BUILT_FACT, f"{int(version)} {'yes' if revealed else 'no'}")


def published(course: Course) -> tuple:
    """``(version, revealed)`` of the last board a replica published, ``(None, None)`` before any."""
    with course.sessions() as s:
        fact = get_meta(s, BUILT_FACT)
    if not fact:
        return None, None
    version, revealed = fact.split()
    return int(version), revealed == "yes"


def _lower_priority(niceness: int) -> None:
    os.nice(niceness)


def _build_in_child(root: str, bootstrap: int) -> tuple:
    """One rebuild, in the board's own process (it opens the course itself).

    Returns ``(version, revealed, {"pid", "niceness"})``: what was built, and by which process.
    """
    with Course(root) as course:
        done = build_board(course, bootstrap=bootstrap)
    return done["version"], done["revealed"], {"pid": os.getpid(), "niceness": os.nice(0)}


def _warm_child() -> int:
    """Load the engine in the board's process (its first task), so that no rebuild's time includes it."""
    import grader.leaderboard.build  # noqa: F401

    return os.getpid()


class LiveBoard:
    """The background thread that keeps ``private/board/site`` up to date.

    Parameters
    ----------
    course : Course
    interval_s : float
        At most one rebuild per this many seconds (the first one too, counted from start).
    poll_s : float
        How often the audit log is looked at.
    bootstrap : int
        The engine's bootstrap resamples.
    locks : LockSession, optional
        A replica's advisory locks (:mod:`.shared`): it builds only while it holds the builder lock.
    """

    def __init__(self, course: Course, *, interval_s: float = DEFAULT_INTERVAL_S, poll_s: float = POLL_S,
                 bootstrap: int = 2000, locks=None):
        self.course = course
        self.interval_s = float(interval_s)
        self.poll_s = min(float(poll_s), max(self.interval_s, 0.05))
        self.bootstrap = bootstrap
        self.site = site_of(course)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._built = threading.Condition()
        self.built_version: Optional[int] = None
        self.built_revealed: Optional[bool] = None
        self.rebuilds = 0
        self.last_error: Optional[str] = None
        self._pool: Optional[ProcessPool] = None  # the rebuilds' process, started at the first rebuild
        self.builder: Optional[dict] = None  # pid and niceness of the process that made the last rebuild
        self.lock = board_lock(locks) if locks is not None else None  # None: the only server builds
        self._thread = threading.Thread(target=self._run, name="brats-kit-live-board", daemon=True)

    # -- the thread ----------------------------------------------------------------------------
    def start(self) -> "LiveBoard":
        self._thread.start()
        return self

    def notify(self) -> None:
        """Look at the audit log now rather than at the next poll (the throttle still applies)."""
        self._wake.set()

    def close(self, timeout: float = 60.0) -> None:
        """Stop the thread: a rebuild in progress stops at its next file; the last site stays."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self._pool is not None:
            self._pool.stop()
            self._pool.join()
        if self.lock is not None:
            self.lock.release()

    def _run(self) -> None:
        # The first rebuild waits one interval too: a short-lived server (a test) builds nothing.
        next_at = time.monotonic() + self.interval_s
        while True:
            self._wake.wait(self.poll_s)
            self._wake.clear()
            if self._stop.is_set() or self._stop.wait(max(0.0, next_at - time.monotonic())):
                break
            try:
                if self.lock is not None:
                    self._follow()
                    was = self.lock.held
                    if not self.lock.try_acquire():
                        continue  # another replica builds
                    if not was:
                        log.info("this replica (pid %d) builds the live board", os.getpid())
                if course_version(self.course) == self.built_version:
                    continue
                self._start_pool()
                began = time.monotonic()
                next_at = began + self.interval_s
                self._rebuild()
                # A big class's rebuild takes seconds: keep the thread idle IDLE_RATIO times as long,
                # so that the board never takes more than a fraction of a core from the scoring workers.
                ended = time.monotonic()
                next_at = max(next_at, ended + IDLE_RATIO * (ended - began))
            except _Stopped:
                break
            except KitError as exc:  # a bad baseline or truth: said in the log, the last good site stays
                self.last_error = f"{exc.code}: {exc}"
                log.error("the live board was not rebuilt: %s", self.last_error)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive one failed rebuild
                self.last_error = repr(exc)
                log.exception("the live board was not rebuilt")

    def _start_pool(self) -> None:
        """Start the rebuilds' process and load the engine in it, once: a one-off start-up (seconds) is not
        counted as a rebuild's time, which sets how long the thread then rests (:data:`IDLE_RATIO`)."""
        if self._pool is not None:
            return
        self._pool = ProcessPool(max_workers=1, initializer=_lower_priority, initargs=(NICENESS,),
                                 context=multiprocessing.get_context("spawn"))
        future = self._pool.schedule(_warm_child)
        while True:
            try:
                future.result(timeout=self.poll_s)
                return
            except concurrent.futures.TimeoutError:
                if self._stop.is_set():
                    future.cancel()
                    raise _Stopped() from None

    def _rebuild(self) -> None:
        self._start_pool()
        future = self._pool.schedule(_build_in_child, args=(str(self.course.root), self.bootstrap))
        while True:
            try:
                version, revealed, self.builder = future.result(timeout=self.poll_s)
                break
            except concurrent.futures.TimeoutError:
                if self._stop.is_set():
                    future.cancel()  # kills the child; the engine's atomic swap keeps the last site whole
                    raise _Stopped() from None
        if self.lock is not None:
            record_built(self.course, version, revealed)
        with self._built:
            self.built_version, self.built_revealed = version, revealed
            self.rebuilds += 1
            self.last_error = None
            self._built.notify_all()

    def _follow(self) -> None:
        """Take the version another replica published as this one's (it serves the same shared site)."""
        version, revealed = published(self.course)
        if version is not None and (self.built_version is None or version > self.built_version):
            with self._built:
                self.built_version, self.built_revealed = version, revealed
                self._built.notify_all()

    def wait_current(self, timeout: float = 60.0) -> bool:
        """Block until a site as recent as the course's present state is in place (tests, the demo)."""
        target = course_version(self.course)
        deadline = time.monotonic() + timeout
        self.notify()
        with self._built:
            while self.built_version is None or self.built_version < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._built.wait(min(left, 0.5))
        return True

    # -- what the routes serve ------------------------------------------------------------------
    def read(self, name: str, track: str = FILE) -> Optional[bytes]:
        """A file of ``track``'s current site (``index.html``, ``leaderboard.csv``...), None before its first build."""
        from grader.leaderboard.build import SITE_FILES

        if name not in SITE_FILES or track not in TRACK_LINKS:
            return None
        try:
            return (site_of(self.course, track) / name).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None


def start_live_board(course: Course, *, interval_s: Optional[float] = None, locks=None) -> Optional[LiveBoard]:
    """The course's live board, started (None when ``extra.board_interval_s`` is 0); ``locks``: see :class:`LiveBoard`."""
    if interval_s is None:
        interval_s = float((course.config.extra or {}).get("board_interval_s", DEFAULT_INTERVAL_S))
    if interval_s <= 0:
        return None
    return LiveBoard(course, interval_s=interval_s, locks=locks).start()

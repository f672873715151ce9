"""Build the course's competition from a BraTS release, one patient at a time."""
from __future__ import annotations

import itertools
import secrets
import shlex
import warnings
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from plumbing.progress import no_progress

from data_spec.constants import (
    MANIFEST_FILE,
    MODALITIES,
    NORMALISATION,
    PRIVATE_DIR,
    SLICE_SHAPE,
    HIDDEN,
    SPEC_VERSION,
    TEST,
    TRAIN,
    X_DTYPE,
    Y_DTYPE,
    case_ids,
    hidden_public_mask,
    public_mask,
)
from data_spec.errors import BadArgumentError, KitError, check_choice
from data_spec.hdf5 import sha256_array, sha256_file
from data_spec.layout import check_competition_out, write_competition
from data_spec.ranking_record import RANKING_KEY
from .sources import find_source
from .volume import AXCODES, BRAIN_RULE, ORIENTATION, SLICE_RULES, UnusableCase, extract_patient

GENERATOR = "brats-kit prepare"
#: Seeds are at most 2**63 - 1 (numpy's generators take no negative seed; the manifest keeps it as an integer).
MAX_SEED = 2**63 - 1


class NotEnoughCasesError(KitError, ValueError):
    """The release has fewer usable patients than the competition asks for."""

    code = "not_enough_cases"


class SkippedCaseWarning(UserWarning):
    """A patient of the release was left out (the message names it and says why)."""


def _warn(message: str) -> None:
    warnings.warn(message, SkippedCaseWarning, stacklevel=3)


def _slice_rng(seed: int, case_id: str) -> np.random.Generator:
    # Keyed by the case's name: its random slice does not depend on which other cases exist.
    return np.random.default_rng([seed, zlib.crc32(case_id.encode("utf-8"))])


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def prepare_competition(
    source,
    out,
    *,
    n_train: int = 256,
    n_test: int = 29,
    seed: int | None = None,
    slice_rule: str = "largest",
    progress=no_progress,
    warn=_warn,
    force: bool = False,
    n_hidden: int = 0,
    ranking: str | None = None,
) -> "PreparedCompetition":
    """Turn a downloaded BraTS release into the course's competition.

    Patients are shuffled with ``seed`` and read one at a time in that order
    until ``n_train + n_test`` usable ones are found; the first ``n_train``
    form the training split, the next ``n_test`` the test split (one slice per
    patient, so the split is by patient). Each patient gives one axial slice,
    normalised as the course (see :mod:`cohorts.prepare.volume`), and its
    whole-tumour mask (every non-zero label).

    Parameters
    ----------
    source : path-like
        The release folder (BraTS 2018-2020, 2021, 2023+ glioma, or the
        Decathlon's Task01_BrainTumour; see :data:`~cohorts.prepare.sources.SCHEMES`).
    out : path-like
        Competition directory to write: both layouts, and under ``private/``
        the test truth and ``manifest.json`` (source case ids, slice indices,
        source and output checksums, parameters).
    n_train, n_test : int
        Patients in each split (at least 1 each).
    seed : int, optional
        From 0 to 2**63 - 1. Drives the patient shuffle, the random slice and
        the public/private split of the test cases. Same source and
        arguments: byte-identical files. Default: a secret random seed (a
        student holding the public release cannot rerun the build with a
        guessed seed to learn which patient each test case is). It is
        recorded only in ``private/manifest.json``: no public file holds it.
    slice_rule : {"largest", "random"}
        The axial slice with the largest tumour area (ties: lowest index), or a
        seeded random slice among those with tumour.
    progress : callable
        Wraps the loop over patients (see :mod:`plumbing.progress`).
    warn : callable
        Receives one message per skipped patient (default: a
        :class:`SkippedCaseWarning`).
    force : bool
        Replace a competition ``out`` already holds (checked before anything
        is read; see :func:`data_spec.layout.check_competition_out`).
    ranking : str, optional
        The leaderboard's ranking score (a name ``brats-kit leaderboard --ranking``
        accepts; the command checks it), recorded in ``private/manifest.json``
        (:mod:`data_spec.ranking_record`). Default: Dice, as the course.

    Returns
    -------
    PreparedCompetition

    Raises
    ------
    KitError
        A bad argument (code ``bad_argument``); nothing is read.
    OverwriteError
        ``out`` already holds a competition (without ``force``), or lies in
        one's ``private/``; nothing is read.
    MissingFileError, LayoutError
        ``source`` is absent or not a recognised release.
    NotEnoughCasesError
        Fewer usable patients than ``n_train + n_test``; nothing is written.

    Notes
    -----
    A patient with a missing file, an unreadable file, a shape mismatch
    (modalities or label map differing, or axial slices other than 240x240:
    they are skipped, not cropped or padded), more than
    :data:`~cohorts.prepare.volume.MAX_AXIAL_SLICES` axial slices or too large
    for memory, a label map that is not one (NaN, fractions, or labels outside
    the release's set), no tumour voxel, a modality constant over the brain,
    or the same images as a patient already kept (a release that holds one
    patient twice under two names: keeping both could put them on both sides)
    is skipped with a warning that names it, and counted; never the whole build.
    Memory: one patient's volumes plus the kept slices (about 1 MB each).
    """
    seed, seed_source = _check_arguments(n_train, n_test, seed, slice_rule, n_hidden)
    check_competition_out(out, force=force)
    src = find_source(source)
    n_needed = n_train + n_test + n_hidden
    title = f"{src.scheme.title} ({len(src.cases)} cases found)"
    if len(src.cases) < n_needed:
        raise NotEnoughCasesError(
            f"{title}: {n_train} train + {n_test} test{f' + {n_hidden} hidden' if n_hidden else ''} = "
            f"{n_needed} patients asked for",
            path=src.root,
            hint="ask for fewer with --train/--test",
        )
    reader = _PatientReader(src, seed, slice_rule, warn)
    x = np.empty((n_needed,) + SLICE_SHAPE + (len(MODALITIES),), dtype=X_DTYPE)
    y = np.empty((n_needed,) + SLICE_SHAPE, dtype=Y_DTYPE)
    records = []
    for kept, record in progress(
        itertools.islice(reader.usable(), n_needed), label=f"reading {src.scheme.title} patients", length=n_needed
    ):
        i = len(records)
        x[i], y[i] = kept.x, kept.y
        records.append(record)
    if len(records) < n_needed:
        raise reader.not_enough(title, len(records), n_train, n_test, n_hidden)

    public = public_mask(n_test, seed)
    flags = {TEST: public, HIDDEN: hidden_public_mask(n_hidden, seed)}
    ids = {TRAIN: case_ids(TRAIN, n_train), TEST: case_ids(TEST, n_test), HIDDEN: case_ids(HIDDEN, n_hidden)}
    n_known = n_train + n_test
    for i, record in enumerate(records):
        split, j = (TRAIN, i) if i < n_train else (TEST, i - n_train) if i < n_known else (HIDDEN, i - n_known)
        record["case_id"] = str(ids[split][j])
        if split != TRAIN:
            record["public"] = bool(flags[split][j])
    manifest = _manifest(src, records, reader, n_train=n_train, n_test=n_test, seed=seed,
                         seed_source=seed_source, slice_rule=slice_rule, n_hidden=n_hidden)
    if ranking is not None:  # the leaderboard's ranking score (checked by the command), default Dice
        manifest[RANKING_KEY] = ranking
    # Public attributes (every HDF5 file): nothing that would let a student rerun the build (no seed)
    # or tell which source patient a test case is. The seed and the sources stay in the private manifest.
    attrs = {"generator": GENERATOR, "source_kind": src.scheme.kind, "slice_rule": slice_rule}
    written = write_competition(
        out,
        train={"x": x[:n_train], "y": y[:n_train], "case_id": ids[TRAIN]},
        test={"x": x[n_train:n_known], "y": y[n_train:n_known], "case_id": ids[TEST], "public": public},
        attrs=attrs,
        manifest=manifest,
        force=force,
        # The hidden slices are the last patients read: private/hidden_test.h5 only.
        hidden={"x": x[n_known:], "y": y[n_known:], "case_id": ids[HIDDEN], "public": flags[HIDDEN]}
        if n_hidden else None,
    )
    return PreparedCompetition(
        source={"path": str(src.root), "kind": src.scheme.kind, "title": src.scheme.title},
        found=len(src.cases), read=reader.read, used=n_needed, n_skipped=len(reader.skipped),
        skipped=reader.skipped, not_read=len(src.cases) - reader.read, train=n_train, test=n_test,
        public=int(public.sum()), slice_rule=slice_rule, hidden=n_hidden,
        # a secret seed is not echoed (terminals get pasted): it is in the private manifest
        seed=None if seed_source.startswith("secret") else seed, seed_source=seed_source,
        out=str(Path(out)), manifest=str(Path(out) / PRIVATE_DIR / MANIFEST_FILE),
        files={name: str(path) for name, path in sorted(written.items())},
    )


@dataclass(frozen=True)
class PreparedCompetition:
    """What :func:`prepare_competition` did: ``brats-kit data prepare --json`` prints :meth:`to_dict`.

    Attributes
    ----------
    source : dict
        ``path``, ``kind``, ``title`` of the release.
    found, read, used, n_skipped, not_read : int
        Patients found, read, used, skipped and never read.
    skipped : list of dict
        ``{"case", "reason"}`` per skipped patient.
    train, test, public : int
        Patients per split; public test cases.
    slice_rule : str
    seed : int or None
        None when it is secret (it is only in the private manifest).
    seed_source : str
    out, manifest : str
    files : dict
        Relative name -> path of every file written.
    hidden : int
        Hidden test slices (the code track's, under ``private/`` only).
    """

    source: dict
    found: int
    read: int
    used: int
    n_skipped: int
    skipped: list
    not_read: int
    train: int
    test: int
    public: int
    slice_rule: str
    seed: Optional[int]
    seed_source: str
    out: str
    manifest: str
    files: dict
    hidden: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _check_arguments(n_train, n_test, seed, slice_rule, n_hidden=0) -> tuple:
    """The checked seed (drawn in secret when None) and where it came from; BadArgumentError otherwise."""
    if isinstance(n_hidden, bool) or not isinstance(n_hidden, (int, np.integer)) or n_hidden < 0:
        raise BadArgumentError(f"n_hidden must be a non-negative integer, got {n_hidden!r}")
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise BadArgumentError(f"{name} must be an integer of at least 1, got {value!r}")
    check_choice("slice_rule", slice_rule, SLICE_RULES)
    seed_source = "explicit" if seed is not None else "secret: 63 bits from the operating system"
    if seed is None:
        seed = secrets.randbits(63)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise BadArgumentError(f"seed must be an integer from 0 to 2**63 - 1, got {seed!r}")
    return int(seed), seed_source


class _PatientReader:
    """Reads the release's patients in the seed's order, one at a time, skipping and counting the unusable.

    Attributes
    ----------
    read : int
        Patients read so far.
    skipped : list of dict
        ``{"case", "reason"}`` of each skipped patient.
    """

    def __init__(self, src, seed: int, slice_rule: str, warn):
        self.src, self.seed, self.slice_rule, self.warn = src, seed, slice_rule, warn
        self.order = np.random.default_rng(seed).permutation(len(src.cases))
        self.read = 0
        self.skipped: list = []
        self._seen: dict = {}  # sha256 of an image file or of a kept slice -> the case that had it

    def skip(self, case, why: str) -> None:
        self.skipped.append({"case": case.case_id, "reason": why})
        self.warn(f"skipped {case.case_id}: {why}")

    def usable(self):
        """Yield ``(kept slice, manifest record)`` of each usable patient, in order."""
        for i in self.order:
            case = self.src.cases[i]
            self.read += 1
            kept = self._extract(case)
            if kept is None:
                continue
            record = self._record(case, kept)
            if record is not None:
                yield kept, record

    def _extract(self, case):
        try:
            return extract_patient(case, self.slice_rule, _slice_rng(self.seed, case.case_id),
                                   labels=self.src.scheme.labels, release=self.src.scheme.title)
        except UnusableCase as why:
            self.skip(case, str(why))
        except MemoryError:
            self.skip(case, "not enough memory to read its volumes")
        except Exception as exc:  # noqa: BLE001 - one patient's odd file never stops the build
            self.skip(case, f"could not be read ({type(exc).__name__}: {exc})")
        return None

    def _record(self, case, kept):
        """The patient's manifest record (files, checksums), or None when it is unreadable or a duplicate."""
        root = self.src.root
        record = dict(kept.record)
        record["files"] = {key: _relative(path, root) for key, path in case.files.items()}
        try:
            record["sha256"] = {_relative(p, root): sha256_file(p) for p in sorted(set(case.files.values()))}
        except OSError as exc:
            self.skip(case, f"unreadable file ({exc.strerror or exc})")
            return None
        record["x_sha256"] = sha256_array(kept.x[None])
        record["y_sha256"] = sha256_array(kept.y[None])
        # The same patient under two names: same image files, or the same normalised slice.
        images = {record["sha256"][_relative(case.files[m], root)] for m in MODALITIES}
        keys = [("x", record["x_sha256"])] + [("file", h) for h in sorted(images)]
        twin = next((self._seen[k] for k in keys if k in self._seen), None)
        if twin is not None:
            self.skip(case, f"duplicate of {twin} (same image content, sha256); kept {twin} only, "
                            "so one patient is never on both sides")
            return None
        for k in keys:
            self._seen[k] = case.case_id
        return record

    def not_enough(self, title: str, n_usable: int, n_train: int, n_test: int, n_hidden: int = 0) -> NotEnoughCasesError:
        """The error for a release with fewer usable patients than asked for."""
        skipped = self.skipped
        reasons = "; ".join(f"{s['case']}: {s['reason']}" for s in skipped[:3]) + ("; ..." if len(skipped) > 3 else "")
        return NotEnoughCasesError(
            f"{title}: only {n_usable} usable patients ({len(skipped)} skipped: {reasons}); "
            f"{n_train} train + {n_test} test{f' + {n_hidden} hidden' if n_hidden else ''} = "
            f"{n_train + n_test + n_hidden} asked for",
            path=self.src.root,
            hint="ask for fewer with --train/--test" + ("/--hidden-test" if n_hidden else "")
            + ("; a validation release has no label maps: use the training data"
               if all(s["reason"] == "missing seg" for s in skipped) else ""),
        )


def _manifest(src, records, reader: _PatientReader, *, n_train, n_test, seed, seed_source, slice_rule,
              n_hidden=0) -> dict:
    """The private manifest: parameters (the seed among them), source, preprocessing, every patient's record."""
    root = src.root
    manifest = {
        "generator": GENERATOR,
        "spec_version": SPEC_VERSION,
        "command": f"brats-kit data prepare {shlex.quote(str(root))} --out DIR --train {n_train} --test {n_test} "
        f"--seed {seed} --slice {slice_rule}",
        "parameters": {"n_train": n_train, "n_test": n_test, "seed": seed, "slice_rule": slice_rule},
        "seed_source": seed_source,
        "source": {"path": str(root), "kind": src.scheme.kind, "title": src.scheme.title,
                   "pattern": src.scheme.pattern, "n_cases": len(src.cases)},
        "preprocessing": {"normalisation": NORMALISATION, "brain": BRAIN_RULE,
                          "orientation": ORIENTATION, "axcodes": "".join(AXCODES),
                          "whole_tumour": "every non-zero label"},
        "train": records[:n_train],
        "test": records[n_train:n_train + n_test],
        "skipped": reader.skipped,
        "not_read": len(src.cases) - reader.read,
    }
    if n_hidden:  # absent otherwise: a build without hidden slices is byte-identical to one before they existed
        manifest["command"] += f" --hidden-test {n_hidden}"
        manifest["parameters"]["n_hidden"] = n_hidden
        manifest["hidden"] = records[n_train + n_test:]
    return manifest

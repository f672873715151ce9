"""The two uses of a sandboxed run: a student's ``code run`` at home, and the grader's scoring of hidden inputs.

Both call :func:`~grader.code.bwrap.run_code` with the same limits; the returned
prediction is validated by the grader's readers and, for grading, counted by
:func:`grader.scoring.verdict_of`, the one scoring path.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from data_spec.errors import LayoutError
from data_spec.layout import check_output_file, open_split
from data_spec.submission import write_submission
from data_spec.truth import Truth

from ..readers import is_submission_file
from ..scoring import Verdict, verdict_of
from .bwrap import Limits, SandboxRun, run_code
from .users import CodeUser

#: What a code job ends as: a student sees one of these (and, when failed, the failure's class).
STATUSES = ("scored", "valid", "invalid", "failed")


def code_run(source, data, out, *, limits: Limits = Limits(), workdir=None) -> dict:
    """Run a code submission on a competition's public test inputs, exactly as the grader does; write its file.

    Parameters
    ----------
    source : path-like
        A folder holding ``submission.py``, or a ``.zip`` of one.
    data : path-like
        The competition folder the students were given (its test inputs are used).
    out : path-like
        The submission file to write when the prediction is valid (any format
        :func:`data_spec.submission.write_submission` writes).
    limits : Limits
    workdir : path-like, optional

    Returns
    -------
    dict
        ``status`` (``valid``, ``invalid`` or ``failed``), ``failure``,
        ``error_type``, ``detail``, ``seconds``, ``errors`` (validation, when
        invalid), ``log`` (the program's output: the student runs their own code
        on public inputs, so it is theirs to see) and ``out`` when written.
    """
    check_output_file(out, what="a submission file", recognise=is_submission_file)
    test = open_split(data, "test")
    x = np.asarray(test.x)
    run = run_code(source, x, limits=limits, workdir=workdir)
    record = run.public(show_log=True)
    record.pop("validation", None)
    if run.status == "failed":
        return record
    if not run.validation.ok:
        record.update(status="invalid", errors=[e.to_dict() for e in run.validation.errors])
        return record
    write_submission(out, run.prediction)
    record.update(status="valid", out=str(out), n_slices=len(x))
    return record


def grade_code(source, x, truth: Truth, *, limits: Limits = Limits(), workdir=None,
               user: Optional[CodeUser] = None) -> tuple:
    """Run a code submission on (hidden) test inputs and score its prediction against their truth.

    ``user``: the unprivileged host user the sandbox is started as (the server's ``--code-user``).

    Returns
    -------
    (SandboxRun, Verdict or None)
        The verdict is None when the run failed; otherwise it is the scoring
        path's (``scored`` or ``invalid``). The truth never enters the sandbox:
        only ``x`` does.
    """
    if len(x) != len(truth):
        raise LayoutError(f"{len(x)} input slices for a truth of {len(truth)}", path=truth.path,
                          expected="the inputs and the truth of the same slices (open_hidden, load_hidden_truth)")
    run: SandboxRun = run_code(source, x, limits=limits, workdir=workdir, user=user)
    verdict: Optional[Verdict] = None if run.status == "failed" else verdict_of(run.validation, truth)
    return run, verdict

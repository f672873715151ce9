"""Code submissions: a student's ``submission.py`` run on test inputs inside a bubblewrap sandbox.

``package`` checks and copies a folder or ``.zip`` (hostile archives refused with
named errors); ``bwrap`` builds the sandbox, runs the submission's ``predict``
under limits and classifies the outcome; ``runner`` is the script executed inside.
The prediction comes back as a file and is validated and scored outside, by the
grader's normal path.
"""
from .bwrap import FAILURE_CLASSES, Limits, SandboxRun, probe_sandbox, run_code, sandbox_problem
from .jobs import STATUSES, code_run, grade_code
from .package import SUBMISSION_MODULE, unpack_submission
from .users import CodeUser, code_user

__all__ = ["CodeUser", "FAILURE_CLASSES", "Limits", "STATUSES", "SandboxRun", "SUBMISSION_MODULE", "code_run",
           "code_user", "grade_code", "probe_sandbox", "run_code",
           "sandbox_problem", "unpack_submission"]

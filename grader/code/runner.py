"""The script run inside the sandbox: set the limits, load the inputs, call ``predict``, write the prediction.

It imports nothing of the kit (the grader is not in the sandbox), only numpy and
the standard library. ``argv[1]`` is a JSON object of resource limits. The
prediction goes, as a ``.npy``, to the file descriptor ``argv[2]``; a one-line JSON
status to descriptor ``argv[3]``: ``{"status": "ok"}`` or ``{"status": "failed", "class": ..., "type": ...}``.
The host trusts neither: it validates the prediction and bounds what it reads.
"""
import json
import os
import resource
import signal
import sys

INPUT, CODE_DIR = "/job/x.npy", "/job/code"


def _status(**fields):
    try:
        os.write(int(sys.argv[3]), (json.dumps(fields) + "\n").encode())
    except OSError:
        pass


def _traceback():
    """The student's traceback, for the instructor's log (students see only the exception's type)."""
    try:
        import traceback

        traceback.print_exc()
    except BaseException:  # noqa: BLE001 - a full disk or a broken stderr must not hide the status
        pass


def _output_error(exc):
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.EFBIG, errno.ENOSPC, errno.EDQUOT)


def main():
    for name, value in json.loads(sys.argv[1]).items():
        resource.setrlimit(getattr(resource, name), (value, value))
    # A file-size bomb gets EFBIG (classified) instead of dying silently of SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    import numpy as np

    x = np.load(INPUT, allow_pickle=False)
    sys.path.insert(0, CODE_DIR)
    os.chdir(CODE_DIR)
    try:
        import submission

        y = np.asarray(submission.predict(x))
    except MemoryError:
        _status(status="failed", **{"class": "memory", "type": "MemoryError"})
        return
    except BaseException as exc:
        _traceback()  # noqa: BLE001 - the student's code may raise anything, SystemExit included
        cls = "invalid_output" if _output_error(exc) else "crashed"
        _status(status="failed", **{"class": cls, "type": type(exc).__name__})
        return
    try:
        with os.fdopen(int(sys.argv[2]), "wb", closefd=False) as fh:
            np.save(fh, y, allow_pickle=False)
    except MemoryError:
        _status(status="failed", **{"class": "memory", "type": "MemoryError"})
        return
    except (ValueError, TypeError, OSError) as exc:  # object arrays, or beyond the output cap
        _status(status="failed", **{"class": "invalid_output", "type": type(exc).__name__})
        return
    _status(status="ok")


if __name__ == "__main__":
    main()
    try:
        sys.stdout.flush()
    finally:
        os._exit(0)  # no atexit handler of the student's runs after the verdict

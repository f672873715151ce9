"""Names the server gives stored submissions (from their id and content, never from the upload)."""
from __future__ import annotations

#: Extension of an exported file, by the format the grader recognised (never the uploaded name).
EXTENSIONS = {"dat": "dat", "npy": "npy", "hdf5": "h5", None: "bin"}


def export_name(sub) -> str:
    """The file name of a submission in an export (from its id and content, never from the upload).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> export_name(SimpleNamespace(id=7, sha256="ab" * 32, format="hdf5"))
    '000007-abababababab.h5'
    """
    return f"{sub.id:06d}-{sub.sha256[:12]}.{EXTENSIONS.get(sub.format, 'bin')}"

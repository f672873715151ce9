"""The students' starting-kit notebook, shipped inside the installed package."""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from data_spec.errors import OverwriteError
from data_spec.layout import private_folder
from plumbing.atomic import atomic_path

NOTEBOOK = "starting_kit.ipynb"


def notebook_path() -> Path:
    """Where the installed starting-kit notebook is (copy it next to your data to work in it)."""
    return Path(str(files(__package__) / NOTEBOOK))


def copy_notebook(out, *, force: bool = False) -> dict:
    """Copy the starting-kit notebook into the folder ``out`` (created if needed), atomically.

    A notebook already there with the same bytes is left as it is; a different one
    (the student's own work, most likely) is kept unless ``force``.

    Parameters
    ----------
    out : path-like
        The folder to copy into.
    force : bool
        Replace a different ``starting_kit.ipynb`` in ``out``.

    Returns
    -------
    dict
        ``path`` (str, the copy) and ``status``: "written", "unchanged" or "replaced".

    Raises
    ------
    OverwriteError
        ``out`` holds a different notebook (without ``force``), ``out`` is a file, or it lies
        in a competition's ``private/`` folder.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> copy_notebook(folder)["status"], copy_notebook(folder)["status"]
    ('written', 'unchanged')
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OverwriteError("not a folder", path=out, expected="a folder to copy the notebook into",
                             hint="give a folder, e.g. --out .")
    if private_folder(out / NOTEBOOK) is not None:
        raise OverwriteError("the notebook is never copied into a competition's private/ folder", path=out,
                             hint="copy it next to the competition folder, e.g. --out .")
    data = notebook_path().read_bytes()
    target = out / NOTEBOOK
    status = "written"

    def check(path: Path) -> None:
        nonlocal status
        if path.is_symlink() or path.exists():
            if path.is_file() and not path.is_symlink() and path.read_bytes() == data:
                status = "unchanged"
            elif not force:
                raise OverwriteError("a different notebook is already there (your own work?)", path=path,
                                     hint="copy it elsewhere with --out, or pass --force to replace it")
            elif path.is_dir() and not path.is_symlink():
                raise OverwriteError("a folder has the notebook's name", path=path, hint="move it away first")
            else:
                status = "replaced"

    check(target)
    if status == "unchanged":
        return {"path": str(target), "status": status}
    with atomic_path(target, suffix=".ipynb", check=check) as tmp:
        tmp.write_bytes(data)
    return {"path": str(target), "status": status}

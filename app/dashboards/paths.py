"""Which files a dashboard may open: paths typed into a page stay inside allowed folders.

A dashboard served by voila runs on the server with the server's rights; whoever can type
into its path box could otherwise read any file the server can. So every typed path is
resolved (``~``, ``..`` and symbolic links, with :func:`os.path.realpath`) and must lie
inside one of the allowed folders:

- the folders listed in the environment variable ``LOWENTROPY_ALLOWED_DIRS``
  (separated by ``os.pathsep``, ``:`` on Linux and macOS), when it is set;
- otherwise the project folder: the parent of ``app/``, where the notebooks are
  (``python3 tasks.py app`` sets the variable to the folder it was started from).

A relative path is read from the first allowed folder. Names of embedded networks
(``lowentropy.list_networks()``) are not paths and need no permission.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ALLOWED_DIRS_ENV", "PathNotAllowedError", "allowed_dirs", "checked_path"]

#: The environment variable listing the folders whose files the dashboards may open.
ALLOWED_DIRS_ENV = "LOWENTROPY_ALLOWED_DIRS"

#: The project folder (the parent of ``app/``): the default allowed folder.
PROJECT_DIR = Path(__file__).resolve().parent.parent.parent


class PathNotAllowedError(PermissionError):
    """A typed path resolves outside the allowed folders."""


def allowed_dirs(text: str | None = None) -> list[Path]:
    """The allowed folders, resolved (symbolic links followed), in the order given.

    Parameters
    ----------
    text : str, optional
        Folders separated by ``os.pathsep``; the environment variable
        ``LOWENTROPY_ALLOWED_DIRS`` by default. Empty: the project folder.

    Examples
    --------
    >>> import os
    >>> folders = allowed_dirs(os.pathsep.join(["/tmp", "", "/tmp/../tmp"]))
    >>> folders == [Path(os.path.realpath("/tmp"))]
    True
    >>> allowed_dirs("") == [PROJECT_DIR]
    True
    """
    if text is None:
        text = os.environ.get(ALLOWED_DIRS_ENV, "")
    entries = [e.strip() for e in text.split(os.pathsep) if e.strip()]
    if not entries:
        return [PROJECT_DIR]
    out: list[Path] = []
    for entry in entries:
        folder = Path(os.path.realpath(os.path.expanduser(entry)))
        if folder not in out:
            out.append(folder)
    return out


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def checked_path(text: str | os.PathLike[str], folders: list[Path] | None = None) -> Path:
    """The resolved path of ``text`` if it lies inside an allowed folder.

    Parameters
    ----------
    text : str or os.PathLike
        A path as typed (``~`` is expanded; a relative path starts at the first
        allowed folder).
    folders : list of pathlib.Path, optional
        The allowed folders; :func:`allowed_dirs` by default.

    Returns
    -------
    pathlib.Path
        The real path (symbolic links and ``..`` resolved): open this one, not ``text``.

    Raises
    ------
    TypeError
        If ``text`` is not a string or path.
    ValueError
        If ``text`` is empty or holds a NUL character.
    PathNotAllowedError
        If the real path is outside every allowed folder; the message names the allowed
        folders and how to allow more.

    Examples
    --------
    >>> import os, tempfile
    >>> home = allowed_dirs(tempfile.mkdtemp())
    >>> checked_path("model.npz", home) == home[0] / "model.npz"
    True
    >>> checked_path(os.path.join(home[0], "..", "secret.npz"), home)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    dashboards.paths.PathNotAllowedError: ... is outside the folders the dashboards may \
read (...). Move the file there, upload it, or allow more folders: set \
LOWENTROPY_ALLOWED_DIRS to a list of folders separated by ':' before starting the server.
    """
    if not isinstance(text, str | os.PathLike):
        raise TypeError(f"a path must be a string, got {type(text).__name__}")
    raw = os.fspath(text).strip()
    if not raw:
        raise ValueError("type the path of a model file first")
    if "\0" in raw:
        raise ValueError("a path cannot contain a NUL character")
    folders = allowed_dirs() if folders is None else list(folders)
    path = Path(os.path.expanduser(raw))
    if not path.is_absolute():
        path = folders[0] / path
    real = Path(os.path.realpath(path))
    if any(_inside(real, folder) for folder in folders):
        return real
    shown = ", ".join(str(f) for f in folders)
    raise PathNotAllowedError(
        f"{raw} is outside the folders the dashboards may read ({shown}). Move the file "
        f"there, upload it, or allow more folders: set {ALLOWED_DIRS_ENV} to a list of "
        f"folders separated by {os.pathsep!r} before starting the server.")

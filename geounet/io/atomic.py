"""Atomic outputs: write to a temporary file beside the target, rename on success.

A failed or interrupted run never leaves a file under the target name, and an
existing output is refused unless ``overwrite`` is set (as rasterio's
``resolve_inout``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from geounet.errors import OutputExistsError, OutputNotWritableError

log = logging.getLogger(__name__)


def check_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Check that ``path`` may be written, before any work is done.

    Args:
        path: Output file path.
        overwrite: Allow replacing an existing file.

    Returns:
        The path as an absolute :class:`~pathlib.Path`.

    Raises:
        OutputExistsError: if it exists and ``overwrite`` is false.
        OutputNotWritableError: if its folder is missing, not a folder or not
            writable, or the path is a folder.
    """
    p = Path(path).absolute()
    if p.is_dir():
        raise OutputNotWritableError(
            f"output {str(path)!r} is a folder: expected a file path such as "
            f"{os.path.join(str(path), 'result.geojson')!r}"
        )
    if p.exists() and not overwrite:
        raise OutputExistsError(
            f"output {str(path)!r} already exists; pass --overwrite (overwrite=True) to replace "
            "it or choose another name"
        )
    folder = p.parent
    if not folder.is_dir():
        raise OutputNotWritableError(
            f"output folder {str(folder)!r} does not exist; create it first or choose another "
            "output path"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputNotWritableError(
            f"output folder {str(folder)!r} is not writable; choose a folder you can write to"
        )
    return p


def temp_path_for(path: Path) -> Path:
    """A hidden temporary name beside ``path`` that keeps its extension."""
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def _default_mode(path: Path) -> None:
    """Give a file the permissions a new file gets (``0o666 & ~umask``).

    For files whose writer made them private (safetensors writes 0600), so outputs
    can be shared like any other file.
    """
    mode = path.stat().st_mode & 0o777
    if mode != 0o600:
        return
    umask = os.umask(0)
    os.umask(umask)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o666 & ~umask)


class OutputSet:
    """Several outputs committed together.

    Use :meth:`add` for each output (checks it at once and returns the
    temporary path to write), then :meth:`commit` to rename every temporary
    file to its target; :meth:`discard` (or leaving the ``with`` block with an
    exception) removes them all.

    Args:
        overwrite: Allow replacing existing outputs.
    """

    def __init__(self, overwrite: bool = False) -> None:
        self.overwrite = overwrite
        self._pairs: list[tuple[Path, Path]] = []
        self._scratch: list[Path] = []

    def add(self, path: str | os.PathLike) -> Path:
        """Register an output; return the temporary path to write it to.

        Raises:
            OutputExistsError: see :func:`check_output`.
            OutputNotWritableError: see :func:`check_output`.
        """
        target = check_output(path, self.overwrite)
        if any(target == t for t, _ in self._pairs):
            raise OutputNotWritableError(f"output {str(path)!r} is given twice")
        tmp = temp_path_for(target)
        self._pairs.append((target, tmp))
        return tmp

    def scratch(self, near: Path, suffix: str = ".tif") -> Path:
        """A hidden scratch file beside ``near``, removed by :meth:`commit` and :meth:`discard`."""
        p = Path(near).with_name(f".{Path(near).stem}.{uuid.uuid4().hex[:8]}.scratch{suffix}")
        self._scratch.append(p)
        return p

    def _remove_scratch(self) -> None:
        for p in self._scratch:
            for q in (p, p.with_name(p.name + ".aux.xml"), p.with_name(p.name + ".ovr")):
                with contextlib.suppress(FileNotFoundError):
                    q.unlink()
        self._scratch.clear()

    def commit(self) -> list[Path]:
        """Rename every temporary file to its target; return the targets."""
        done = []
        for target, tmp in self._pairs:
            if tmp.exists():
                _default_mode(tmp)
                os.replace(tmp, target)
                done.append(target)
                log.info("wrote %s", target)
        self._pairs.clear()
        self._remove_scratch()
        return done

    def discard(self) -> None:
        """Remove every temporary file (and GDAL side-car files)."""
        for _, tmp in self._pairs:
            for p in (tmp, tmp.with_name(tmp.name + ".aux.xml"), tmp.with_name(tmp.name + ".msk")):
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        self._pairs.clear()
        self._remove_scratch()

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.discard()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path for one output; rename it to ``path`` on success.

    Raises:
        OutputExistsError: see :func:`check_output`.
        OutputNotWritableError: see :func:`check_output`.
    """
    with OutputSet(overwrite) as outs:
        tmp = outs.add(path)
        yield tmp
        outs.commit()

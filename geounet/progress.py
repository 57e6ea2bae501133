"""Progress reporting and cancellation.

Long-running functions take a ``progress`` object with two methods:

* ``progress(done, total, stage)`` is called as work advances (``done`` and
  ``total`` are counts in the stage's own unit: tiles, batches, epochs...);
* ``cancelled()`` is polled between batches; when it returns ``True`` the run
  stops with :class:`~geounet.errors.CancelledError` and removes its partial
  outputs.

The CLI's progress bar (:class:`TqdmProgress`) and the JSON-lines reporter used
by the QGIS script (:class:`JsonLinesProgress`) are implementations.
Nothing here ever calls ``print``.
"""

from __future__ import annotations

import json
import sys
from typing import IO, Any, Protocol, runtime_checkable

from geounet.errors import CancelledError


@runtime_checkable
class Progress(Protocol):
    """The progress/cancel protocol every reporter implements."""

    def __call__(self, done: int, total: int, stage: str) -> None:
        """Report that ``done`` of ``total`` units of ``stage`` are finished."""

    def cancelled(self) -> bool:
        """Return ``True`` to ask the running job to stop."""


class NullProgress:
    """Reports nothing and never cancels."""

    def __call__(self, done: int, total: int, stage: str) -> None:  # noqa: D102
        pass

    def cancelled(self) -> bool:  # noqa: D102
        return False


class TqdmProgress:
    """A tqdm progress bar per stage on stderr (the CLI's reporter).

    Args:
        disable: Show nothing (``--quiet``).
    """

    def __init__(self, disable: bool = False) -> None:
        self.disable = disable
        self._bars: dict[str, Any] = {}

    def __call__(self, done: int, total: int, stage: str) -> None:  # noqa: D102
        if self.disable:
            return
        from tqdm.auto import tqdm

        bar = self._bars.get(stage)
        if bar is None:
            bar = tqdm(total=total, desc=stage, unit="", leave=False, file=sys.stderr)
            self._bars[stage] = bar
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()
            del self._bars[stage]

    def cancelled(self) -> bool:  # noqa: D102
        return False

    def close(self) -> None:
        """Close any bar still open."""
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()


class JsonLinesProgress:
    """One JSON object per line, ``{"done": d, "total": t, "stage": s}``.

    Used by ``geounet predict --progress json`` so that another program (the
    QGIS script) can follow the run.

    Args:
        stream: Text stream to write to (default ``sys.stderr``).
    """

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr

    def __call__(self, done: int, total: int, stage: str) -> None:  # noqa: D102
        self.stream.write(json.dumps({"done": done, "total": total, "stage": stage}) + "\n")
        self.stream.flush()

    def cancelled(self) -> bool:  # noqa: D102
        return False


class PrefixedProgress:
    """Passes reports on to another reporter with ``"<stage> <label>"`` stages.

    Args:
        inner: The reporter to pass to.
        label: Appended to every stage name (e.g. the scene's name).
    """

    def __init__(self, inner: Progress, label: str) -> None:
        self.inner = inner
        self.label = label

    def __call__(self, done: int, total: int, stage: str) -> None:  # noqa: D102
        self.inner(done, total, f"{stage} {self.label}")

    def cancelled(self) -> bool:  # noqa: D102
        return self.inner.cancelled()


def check_cancelled(progress: Progress) -> None:
    """Raise :class:`CancelledError` if ``progress.cancelled()`` is true.

    Raises:
        CancelledError: when the reporter asks to stop.
    """
    if progress.cancelled():
        raise CancelledError("the run was cancelled; partial outputs were removed")

"""Run a generator on a background thread with a bounded queue (prefetching)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
_END = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def background(make_iter: Callable[[], Iterator[T]], maxsize: int = 2,
               name: str = "geounet-prefetch") -> Iterator[T]:
    """Iterate ``make_iter()`` on a daemon thread, ``maxsize`` items ahead.

    ``make_iter`` is called on the thread, so resources it opens (a rasterio
    dataset) belong to that thread. Exceptions are re-raised in the consumer.
    Closing the returned generator (or leaving a ``for`` loop early) stops the
    producer at its next item.

    Args:
        make_iter: Zero-argument callable returning an iterator.
        maxsize: Items produced ahead of the consumer (bounds memory).
        name: Thread name.

    Yields:
        The items of ``make_iter()``, in order.
    """
    q: queue.Queue = queue.Queue(maxsize=maxsize)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in make_iter():
                if not put(item):
                    return
            put(_END)
        except BaseException as exc:
            put(_Failure(exc))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)

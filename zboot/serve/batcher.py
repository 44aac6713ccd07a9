"""Requests that arrive together are answered by one run of the workflow:
forty machines powered on at once cost one read of the state, one batch of
resets (one engine call down, one up) and one set of answers, not forty."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

Q = TypeVar("Q")
A = TypeVar("A")
GATHER = 0.2  # seconds a batch waits for more requests after its first


class Batcher(Generic[Q, A]):
    """One worker thread runs `handle` over every request waiting, in turn;
    `on_error` answers each request of a batch whose run raised."""

    def __init__(
        self,
        handle: Callable[[list[Q]], list[A]],
        on_error: Callable[[Q, Exception], A],
        gather: float = GATHER,
    ) -> None:
        self.handle = handle
        self.on_error = on_error
        self.gather = gather
        self._waiting: list[tuple[Q, Future[A]]] = []
        self._ready = threading.Condition()
        self.batches: list[int] = []  # the size of each batch run (tests, logs)
        threading.Thread(target=self._work, name="zboot-serve-batches", daemon=True).start()

    def ask(self, item: Q, timeout: float) -> A:
        """The answer to item, once its batch has run (TimeoutError after timeout)."""
        future: Future[A] = Future()
        with self._ready:
            self._waiting.append((item, future))
            self._ready.notify()
        return future.result(timeout)

    def _take(self) -> list[tuple[Q, Future[A]]]:
        with self._ready:
            while not self._waiting:
                self._ready.wait()
        time.sleep(self.gather)
        with self._ready:
            batch, self._waiting = self._waiting, []
        return batch

    def _work(self) -> None:
        while True:
            batch = self._take()
            self.batches.append(len(batch))
            items = [item for item, _ in batch]
            try:
                answers = self.handle(items)
                if len(answers) != len(items):
                    raise RuntimeError(f"{len(answers)} answers to {len(items)} requests")
            except Exception as err:  # every request gets an answer, whatever broke
                answers = [self.on_error(item, err) for item in items]
            for (_, future), answer in zip(batch, answers, strict=True):
                future.set_result(answer)

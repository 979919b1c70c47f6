"""A prefetching wrapper for a batch loader: a background thread keeps the next batches ready (collated, and pinned
when CUDA is in use), the consumer copies each to the device with `non_blocking=True`.

    batches = Prefetcher(loader, device, depth=2)   # same batches, same order as iter(loader)
    for step in ...:
        batch = next(batches)                       # dict of tensors, already on `device`
        ...
        meta["loader"] = batches.state_dict()       # the loader's state after the last batch *consumed*
    batches.close()                                 # or `with Prefetcher(...) as batches:`

Why: the loader reads memory-mapped shards and pads in Python/NumPy. On a GPU that host work (and a copy from
pageable memory, which is synchronous) would sit between steps; in a thread it overlaps the step. One producer
thread reads the loader in order, so the batches and their order are exactly the loader's.

The loader runs ahead of the consumer by up to depth + 1 batches, so `loader.state_dict()` would be ahead too:
checkpoint `Prefetcher.state_dict()` instead (the state recorded with each batch as it was produced). An exception
in the producer is re-raised by `next()` in the consumer; `close()` (also on leaving a `with` block, normally or by an
exception) stops and joins the thread.
"""
from __future__ import annotations

import queue
import threading

import torch

_END = object()  # the loader is exhausted


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """Iterate `loader` (an iterable of dicts of CPU tensors) with `depth` batches prepared ahead in a thread."""

    def __init__(self, loader, device="cpu", depth: int = 2, pin_memory: bool | None = None):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.loader, self.device = loader, torch.device(device)
        self.pin_memory = self.device.type == "cuda" if pin_memory is None else pin_memory
        self._state = self._loader_state()  # resuming before any batch is consumed starts where the loader is
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._produce, name="electra-prefetch", daemon=True)
        self._thread.start()

    def _loader_state(self):
        return self.loader.state_dict() if hasattr(self.loader, "state_dict") else None

    def _put(self, item) -> bool:
        """Queue an item unless asked to stop; False once stopped."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        if self.pin_memory and self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # pin_memory() in this thread uses the consumer's device context
        batches = iter(self.loader)
        try:
            while not self._stop.is_set():
                try:
                    batch = next(batches)
                except StopIteration:
                    self._put(_END)
                    return
                if self.pin_memory:
                    batch = {k: v.pin_memory() for k, v in batch.items()}
                if not self._put((batch, self._loader_state())):
                    return
        except BaseException as e:  # noqa: BLE001 - every failure goes to the consumer, which re-raises it
            self._put(_Failure(e))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:  # a generator loader: run its cleanup in the thread that ran it
                close()

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self._done:
            raise StopIteration
        while True:
            try:
                item = self._queue.get(timeout=1.0)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self._done = True
                    raise RuntimeError("the prefetch thread stopped without a batch or an error") from None
        if item is _END:
            self._done = True
            self._thread.join()
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            raise item.error
        batch, self._state = item
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def state_dict(self):
        """The wrapped loader's state after the last batch returned by next() (None if it has no state_dict)."""
        return self._state

    def close(self) -> None:
        """Stop the producer and wait for it; batches prepared ahead are dropped. Safe to call twice."""
        self._done = True
        self._stop.set()
        while self._thread.is_alive():
            try:  # unblock a producer waiting on a full queue
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=0.1)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if getattr(self, "_thread", None) is not None:
            self._stop.set()

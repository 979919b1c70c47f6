"""The prefetching loader (electra/prefetch.py): exactly the plain loader's batches in its order, a resumable state
that follows the consumer (not the thread running ahead), no thread left behind, producer errors re-raised.

    .venv/bin/pytest -q tests/test_prefetch.py
"""
from __future__ import annotations

import itertools
import threading

import pytest
import torch

from electra.loader import PretrainLoader
from electra.prefetch import Prefetcher


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "electra-prefetch"]


def _loader(data_dir, **kw):
    return PretrainLoader(data_dir, "train", batch_size=8, seed=3, shuffle=True, pad_to_multiple=8, **kw)


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_batches_same_order_and_resumable_state(tiny_prepared_dir):
    plain_loader = _loader(tiny_prepared_dir)
    n = len(plain_loader) + 5  # across an epoch boundary
    plain = iter(plain_loader)
    with Prefetcher(_loader(tiny_prepared_dir), depth=3) as batches:
        assert batches.state_dict() == plain_loader.state_dict()  # nothing consumed yet
        for i in range(n):
            a, b = next(plain), next(batches)
            assert _equal(a, b), i
            # the loader in the thread is ahead; the state is the consumer's, as the plain loader's
            assert batches.state_dict() == plain_loader.state_dict(), i
            if i == 10:
                saved = batches.state_dict()
                expected_next = next(iter(_resumed(tiny_prepared_dir, saved)))
                peek = next(batches)
                assert _equal(peek, expected_next) and _equal(peek, next(plain))
    assert not _prefetch_threads()


def _resumed(data_dir, state):
    loader = _loader(data_dir)
    loader.load_state_dict(state)
    return loader


def test_finite_loader_ends_like_the_plain_one(tiny_prepared_dir):
    kw = dict(batch_size=16, shuffle=False, drop_last=False)
    plain = list(PretrainLoader(tiny_prepared_dir, "valid", **kw))
    got = list(Prefetcher(PretrainLoader(tiny_prepared_dir, "valid", **kw), depth=2))
    assert len(got) == len(plain) > 1 and all(_equal(a, b) for a, b in zip(plain, got))
    assert not _prefetch_threads()


def test_close_stops_a_thread_blocked_on_a_full_queue(tiny_prepared_dir):
    batches = Prefetcher(_loader(tiny_prepared_dir), depth=2)
    next(batches)
    while batches._queue.qsize() < 2:  # let the producer fill the queue and block on put()
        threading.Event().wait(0.01)
    assert batches._thread.is_alive()
    batches.close()
    assert not batches._thread.is_alive() and not _prefetch_threads()
    with pytest.raises(StopIteration):
        next(batches)
    batches.close()  # twice is fine


def test_exception_in_the_consumer_leaves_no_thread(tiny_prepared_dir):
    with pytest.raises(KeyError):
        with Prefetcher(_loader(tiny_prepared_dir), depth=4) as batches:
            for batch in batches:
                batch["no such key"]
    assert not _prefetch_threads()


def test_producer_error_is_raised_in_the_consumer(tiny_prepared_dir):
    def failing():  # a data source that breaks after 3 batches (e.g. a shard that became unreadable)
        yield from itertools.islice(_loader(tiny_prepared_dir), 3)
        raise OSError("shard train-00000.bin: input/output error")

    batches = Prefetcher(failing(), depth=2)
    got = [next(batches) for _ in range(3)]
    assert len(got) == 3 and batches.state_dict() is None  # a plain generator has no state_dict
    with pytest.raises(OSError, match="input/output error"):
        next(batches)
    assert not _prefetch_threads()
    with pytest.raises(StopIteration):
        next(batches)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_are_pinned_copies_on_the_device(tiny_prepared_dir):
    plain = iter(_loader(tiny_prepared_dir))
    with Prefetcher(_loader(tiny_prepared_dir), device="cuda", depth=2) as batches:
        assert batches.pin_memory
        for _ in range(20):
            b = next(batches)
            assert all(v.device.type == "cuda" for v in b.values())
            assert _equal({k: v.cpu() for k, v in b.items()}, next(plain))

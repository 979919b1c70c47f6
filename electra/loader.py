"""Reading a prepared folder: the examples of one split (memory-mapped), and the trivial resumable, rank-strided loader.

    loader = PretrainLoader("runs/data", "train", batch_size=32, rank=r, world_size=w, seed=s)
    batch = next(iter(loader))        # input_ids, token_type_ids, attention_mask: (B, T) int64, T a multiple of 8
    state = loader.state_dict()       # into a checkpoint; loader.load_state_dict(state) resumes at the next batch

The folder is what `electra prepare` writes (electra/data.py): meta.json, {split}-NNNNN.bin token ids and .idx.npy
offsets. Batches are shuffled per epoch from `seed + epoch`, dealt to ranks in turn and padded to a multiple of
`pad_to_multiple` (or to seq_len with fixed_length); segment B starts after the first [SEP].
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from electra.errors import ElectraError

FORMAT_VERSION = 1  # of the prepared folder; electra prepare writes it, a reader refuses any other
META_KEYS = ("format_version", "vocab_size", "seq_len", "pad_id", "unk_id", "cls_id", "sep_id", "mask_id",
             "num_train", "num_valid", "num_train_tokens", "tokenizer_fingerprint", "seed", "dtype", "shards")



class PretrainDataset:
    """The examples of one split of a prepared folder; `example(i)` is a 1-D int64 array of token ids."""

    def __init__(self, data_dir: str | os.PathLike, split: str = "train"):
        self.dir = Path(data_dir)
        meta_path = self.dir / "meta.json"
        if not meta_path.is_file():
            hint = " (an interrupted `electra prepare`? re-run it)" if self.dir.with_name(
                self.dir.name + ".tmp-prepare").exists() else ""
            raise ElectraError(f"{self.dir} is not a prepared data folder: no meta.json{hint}")
        try:
            self.meta = json.loads(meta_path.read_text())
        except ValueError as e:
            raise ElectraError(f"{meta_path} is not valid JSON ({e})") from None
        missing = [k for k in META_KEYS if k not in self.meta]
        if missing:
            raise ElectraError(f"{meta_path} is incomplete: missing {', '.join(missing)}")
        if self.meta["format_version"] != FORMAT_VERSION:
            raise ElectraError(f"{meta_path} has format_version {self.meta['format_version']}; this electra reads "
                               f"{FORMAT_VERSION}: re-run `electra prepare`")
        if split not in self.meta["shards"]:
            raise ElectraError(f"{self.dir} has no split '{split}' (has {', '.join(self.meta['shards'])})")
        self.split = split
        self.tokens, self.offsets = [], []
        for shard in self.meta["shards"][split]:
            if shard["num_examples"] == 0:
                continue
            paths = [self.dir / shard[k] for k in ("tokens", "index")]
            for p in paths:
                if not p.is_file():
                    raise ElectraError(f"{self.dir} is incomplete: {p.name} is missing")
            try:  # allow_pickle stays False: an index holding pickled objects is refused, never run
                offsets = np.load(paths[1])
            except (ValueError, OSError, EOFError) as e:
                raise ElectraError(f"{paths[1]} is not a valid index file ({str(e).splitlines()[0]})") from None
            tokens = np.memmap(paths[0], dtype=self.meta["dtype"], mode="r")
            if len(offsets) != shard["num_examples"] + 1 or len(tokens) != offsets[-1]:
                raise ElectraError(f"{paths[0]} does not match its index (truncated or replaced?)")
            self.tokens.append(tokens)
            self.offsets.append(offsets)
        self._starts = np.cumsum([0] + [len(o) - 1 for o in self.offsets])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def example(self, i: int) -> np.ndarray:
        if not 0 <= i < len(self):
            raise IndexError(f"example {i} out of range for {len(self)} examples")
        s = int(np.searchsorted(self._starts, i, side="right")) - 1
        j = i - self._starts[s]
        return self.tokens[s][self.offsets[s][j]:self.offsets[s][j + 1]].astype(np.int64)

    def document(self, i: int) -> int:
        """The index (in input order) of the document example i came from."""
        s = int(np.searchsorted(self._starts, i, side="right")) - 1
        shard = [sh for sh in self.meta["shards"][self.split] if sh["num_examples"]][s]
        return int(np.load(self.dir / shard["docs"], mmap_mode="r")[i - self._starts[s]])


class PretrainLoader:
    """Padded batches of one split: shuffled per epoch from `seed + epoch`, batch k of an epoch to rank k % world_size.

    The train split (with shuffle) repeats forever, counting `epoch`; otherwise one pass per iteration. With
    drop_last, every rank gets the same number of full batches and the epoch's tail is dropped; without it, the tail
    is dealt out round-robin (the last batches may be short or missing on some ranks). `state_dict()` after a batch
    resumes at the batch after it.
    """

    def __init__(self, data_dir, split="train", batch_size=32, rank=0, world_size=1, seed=0, shuffle=True,
                 drop_last=True, pad_to_multiple=8, fixed_length=False):
        if not 0 <= rank < world_size:
            raise ElectraError(f"rank {rank} is outside world_size {world_size}")
        if batch_size < 1:
            raise ElectraError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = PretrainDataset(data_dir, split)
        self.meta = self.dataset.meta
        self.split, self.batch_size, self.rank, self.world_size = split, batch_size, rank, world_size
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.pad_to_multiple, self.fixed_length = max(1, pad_to_multiple), fixed_length
        self.repeat = split == "train" and shuffle
        if self.repeat and len(self.dataset) < batch_size * world_size:
            raise ElectraError(f"{data_dir} has {len(self.dataset)} {split} examples, fewer than one global batch "
                               f"({batch_size} x {world_size} ranks)")
        self.epoch = 0
        self.batch_in_epoch = 0  # index of this rank's next batch within the epoch

    def _order(self, epoch: int) -> np.ndarray:
        n = len(self.dataset)
        return np.random.default_rng(self.seed + epoch).permutation(n) if self.shuffle else np.arange(n)

    def _rank_batches(self, order: np.ndarray) -> list[np.ndarray]:
        b, w = self.batch_size, self.world_size
        full = len(order) // (b * w)
        batches = [order[(j * w + self.rank) * b:(j * w + self.rank + 1) * b] for j in range(full)]
        if not self.drop_last:
            tail = order[full * b * w:]
            batches += [tail[i:i + b] for i in range(self.rank * b, len(tail), b * w)]
        return batches

    def __len__(self) -> int:
        """Batches per epoch for this rank."""
        return len(self._rank_batches(np.arange(len(self.dataset))))

    def __iter__(self):
        while True:
            batches = self._rank_batches(self._order(self.epoch))
            while self.batch_in_epoch < len(batches):
                batch = batches[self.batch_in_epoch]
                self.batch_in_epoch += 1
                yield self.collate([self.dataset.example(int(i)) for i in batch])
            self.batch_in_epoch = 0
            if not self.repeat:
                return
            self.epoch += 1

    def collate(self, examples: list[np.ndarray]) -> dict:
        import torch

        seq_len, m = self.meta["seq_len"], self.pad_to_multiple
        longest = max(len(e) for e in examples)
        t = seq_len if self.fixed_length else min(-(-longest // m) * m, max(seq_len, longest))
        input_ids = np.full((len(examples), t), self.meta["pad_id"], dtype=np.int64)  # (B, T)
        token_type = np.zeros((len(examples), t), dtype=np.int64)
        mask = np.zeros((len(examples), t), dtype=np.int64)
        for row, e in enumerate(examples):
            input_ids[row, :len(e)] = e
            mask[row, :len(e)] = 1
            token_type[row, int(np.argmax(e == self.meta["sep_id"])) + 1:len(e)] = 1  # B: after the first [SEP]
        return {"input_ids": torch.from_numpy(input_ids), "token_type_ids": torch.from_numpy(token_type),
                "attention_mask": torch.from_numpy(mask)}

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "examples_done": self.batch_in_epoch * self.batch_size * self.world_size,
                "seed": self.seed, "num_examples": len(self.dataset), "split": self.split}

    def load_state_dict(self, sd: dict) -> None:
        if sd["num_examples"] != len(self.dataset) or sd["split"] != self.split:
            raise ElectraError(f"loader state is for {sd['num_examples']} {sd['split']} examples, this data has "
                               f"{len(self.dataset)} {self.split}: resume with the same prepared folder")
        if sd["seed"] != self.seed:
            raise ElectraError(f"loader state was saved with seed {sd['seed']}, this loader has seed {self.seed}")
        per_step = self.batch_size * self.world_size
        if sd["examples_done"] % per_step:
            raise ElectraError(f"cannot resume at example {sd['examples_done']} of the epoch with {per_step} "
                               f"examples per step (batch size x world size changed)")
        self.epoch, self.batch_in_epoch = sd["epoch"], sd["examples_done"] // per_step

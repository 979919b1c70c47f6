"""Where the shared development data lives, and cached slices of the Wikipedia tarballs.

`shared_data_dir()` finds the read-only data folder (`$ELECTRA_SHARED_DATA`, else `<repo>/../shared/data`; None if
absent). `extract_corpus_slice(tarball, out_dir, max_bytes)` extracts the first `max_bytes` of text from a
WikiExtractor tarball (members in archive order, the last one cut at a `</doc>` line) into a cache folder. Tests,
demos and benchmarks use it so nobody copies the corpus into the repo:

    from electra.sources import shared_data_dir, extract_corpus_slice
    en = extract_corpus_slice(shared_data_dir() / "corpus/enwiki-2015-sample.tar.gz", ".cache/enwiki-4mb", 4 << 20)
"""
from __future__ import annotations

import os
import shutil
import tarfile
import uuid
from pathlib import Path

from electra.errors import ElectraError

REPO_ROOT = Path(__file__).resolve().parents[1]
_DONE = ".complete"  # marker written last into a finished slice folder


def shared_data_dir() -> Path | None:
    """The shared data folder: `$ELECTRA_SHARED_DATA` if set, else `<repo>/../shared/data`; None if it is absent."""
    env = os.environ.get("ELECTRA_SHARED_DATA")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


def extract_corpus_slice(tarball: str | os.PathLike, out_dir: str | os.PathLike, max_bytes: int) -> Path:
    """Extract about `max_bytes` of a WikiExtractor tarball into `out_dir` and return it; reuse a finished slice.

    Regular members are taken in archive order; the member that crosses the budget is cut after its last `</doc>`
    line within the budget, so every extracted file holds whole documents. Safe when several processes ask for the
    same slice at once: each extracts into its own temporary folder and the first rename wins.
    """
    tarball, out_dir = Path(tarball), Path(out_dir)
    if (out_dir / _DONE).exists():
        return out_dir
    if not tarball.is_file():
        raise ElectraError(f"corpus tarball {tarball} not found")
    if max_bytes <= 0:
        raise ElectraError(f"max_bytes must be positive, got {max_bytes}")
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        left = max_bytes
        with tarfile.open(tarball, "r:*") as tar:
            for member in tar:
                if left <= 0:
                    break
                if not member.isfile():
                    continue
                data = tar.extractfile(member).read()
                if len(data) > left:
                    cut = data.rfind(b"</doc>\n", 0, left)
                    data = data[: cut + len(b"</doc>\n")] if cut >= 0 else b""
                    left = 0
                else:
                    left -= len(data)
                if data:
                    target = tmp / Path(member.name).relative_to(Path(member.name).anchor)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
        (tmp / _DONE).write_text(f"{tarball.name} {max_bytes}\n")
        try:
            tmp.rename(out_dir)
        except OSError:  # another process finished first (or out_dir is a leftover without the marker)
            if not (out_dir / _DONE).exists():
                shutil.rmtree(out_dir, ignore_errors=True)
                tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir

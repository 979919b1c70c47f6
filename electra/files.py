"""Small file helpers shared by every writer: atomic text and JSON writers that never leave half a file behind.

    write_json(run_dir / "metrics.json", metrics)              # tmp file + os.replace: never half-written
    write_json(ckpt / "meta.json", meta, fsync=True)          # and flushed to disk (checkpoints, shard progress)
    write_text(Path("out.jsonl"), text)                        # the same for any text (predict --output, --html)
    with removed_on_failure(tmp_dir): ...                      # a temporary folder goes away if the body raises
    usual_mode(tmp / "model.safetensors")                      # 0644 under umask 022 (safetensors writes 0600)
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from electra.errors import ElectraError


def write_text(path, text: str, *, fsync: bool = False) -> Path:
    """Write `text` (UTF-8) to `path` through a temporary sibling and os.replace, so a reader (or a crash) never sees
    half a file; on any failure (a full disk, Ctrl-C) the temporary is removed and the old `path` is left as it was.
    `fsync=True` also forces the bytes to disk before the rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # per process: two writers never share a temporary
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return path


def write_json(path, payload, *, fsync: bool = False, sort_keys: bool = False) -> Path:
    """Write `payload` as indented JSON to `path` atomically (write_text); creates the parent folder. Non-JSON
    values (paths, numpy scalars) are written with str()."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(path, json.dumps(payload, indent=2, sort_keys=sort_keys, default=str) + "\n", fsync=fsync)


@contextlib.contextmanager
def removed_on_failure(folder, when: bool = True):
    """Remove `folder` (and everything in it) if the body raises anything, Ctrl-C included, and `when` holds (e.g.
    only a folder this call created); keep it otherwise."""
    try:
        yield Path(folder)
    except BaseException:
        if when:
            shutil.rmtree(folder, ignore_errors=True)
        raise


def usual_mode(path) -> None:
    """Give a file the mode an ordinary open() would (0666 less the umask, so 0644 usually): safetensors creates
    its files 0600, which would leave weights unreadable to the group that reads everything else of a run."""
    mask = os.umask(0)  # the only way to read the umask; set back at once
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def read_utf8(path: str | os.PathLike) -> str:
    """A whole (small) file as text, BOM dropped: for task files and configs, where a byte that is not UTF-8 is an
    error (ElectraError naming the line), not a counted replacement as in corpora."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ElectraError(f"{path} line {line}: not UTF-8 text ({e.reason} at byte {e.start})") from None

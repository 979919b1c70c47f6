"""Small file helpers shared by every writer: one atomic JSON writer.

    write_json(run_dir / "metrics.json", metrics)              # tmp file + os.replace: never half-written
    write_json(ckpt / "meta.json", meta, fsync=True)          # and flushed to disk (checkpoints, shard progress)
"""
from __future__ import annotations

import json
import os
from pathlib import Path


def write_json(path, payload, *, fsync: bool = False, sort_keys: bool = False) -> Path:
    """Write `payload` as indented JSON to `path` through a temporary file and os.replace, so a reader (or a crash)
    never sees half a file. `fsync=True` also forces the bytes to disk before the rename. Non-JSON values (paths,
    numpy scalars) are written with str()."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")  # per process: two writers never share a temporary
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(payload, indent=2, sort_keys=sort_keys, default=str) + "\n")
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    return path

"""Writing the trainer's and the evaluation's ``.npz`` caches safely."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import numpy as np


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write ``arrays`` to ``path`` atomically: a temporary name of this process's own, then a rename, so
    a reader never sees half a file and two processes building the same cache (e.g. the ranks of a
    distributed run) never write into one file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    try:
        # (cast: numpy's stub would let an array named allow_pickle take that keyword)
        np.savez(tmp, allow_pickle=False, **cast(dict[str, Any], arrays))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)

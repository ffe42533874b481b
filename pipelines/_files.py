"""Folders written whole: built beside their place and swapped in when complete."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

__all__ = ["replaced_folder"]


@contextlib.contextmanager
def replaced_folder(root: Path, *, label: str = "writing") -> Iterator[Path]:
    """Yield a new empty sibling folder of ``root`` to build in; when the block ends without an
    error it takes ``root``'s place (``os.replace``: a reader sees the old folder or the new one,
    never a half-written one). On an error the sibling is removed and ``root`` is left as it was.
    ``label`` names the sibling (``.<root>.<label>-<pid>``)."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f".{root.name}.{label}-{os.getpid()}")
    old = root.with_name(f".{root.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    done = False
    try:
        yield tmp
        if root.exists():
            os.replace(root, old)
        os.replace(tmp, root)
        done = True
    finally:
        if not done:
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)

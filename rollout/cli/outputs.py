"""Files the CLI writes (a report, a metrics file), checked before any work is done."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rollout.errors import UsageError


def writable(path: Path | None, what: str) -> Path | None:
    """`path` if a file can be written there (a temporary file is created and removed beside it),
    else one `UsageError` (exit 2) before anything else happens."""
    if path is None:
        return None
    if path.is_dir():
        raise UsageError(f"cannot write the {what} to {path}: it is a directory")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"cannot write the {what} to {path}: {folder} is not a directory")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{path.name}.", suffix=".check"):
            pass
    except OSError as exc:
        raise UsageError(f"cannot write the {what} to {path}: {exc.strerror or exc}") from None
    return path

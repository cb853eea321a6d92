"""Files Amur writes for others to read (feeds, caches): replaced whole, never seen half-written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["replace_file"]


def replace_file(path: Path, content: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``content`` at once, readable by other users (a web server, another
    process), creating its directory if need be.

    :raises OSError: it could not be written; no temporary file is left behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError:
        Path(temporary).unlink(missing_ok=True)
        raise

"""The folder where prometheus-client's multiprocess mode keeps each process's values.

Apart from `metrics.py` on purpose: the server prepares the folder before anything has imported
prometheus-client, which decides on import how it keeps values (in memory, or in these files).
"""

from __future__ import annotations

import contextlib
import os

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(path: os.PathLike[str] | str) -> None:
    """Make the folder or empty it of metric files (the counts of an earlier run of the server
    are not this one's), and point prometheus-client at it, in this process and its workers."""
    folder = os.fspath(path)
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, name))
    os.environ[MULTIPROC_ENV] = folder

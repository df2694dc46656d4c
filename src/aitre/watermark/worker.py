"""A worker process: `python -m aitre.watermark.worker`, run by `runner.py`, one job at a time.

The protocol is JSON lines. In, on stdin: `{"src", "dst", "options", "limits"}`. Out, on stdout:
`{"started": true}`, `{"progress": 0.42}` now and then, then `{"report": {...}}` or
`{"error": {"code", "message"}}`.
The worker ends when its stdin closes — also in the middle of a job, so a gateway that dies
takes its workers with it.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

_PROGRESS_EVERY = 0.25  # seconds between progress lines


def main() -> int:
    # stdout carries the protocol: anything a library prints goes to stderr instead
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    import cv2

    from aitre.watermark.engine import remove
    from aitre.watermark.errors import RemoverError
    from aitre.watermark.job import EngineOptions, Limits

    cv2.setNumThreads(1)  # one core per job: the pool's size is the cores it may use
    jobs: queue.Queue[dict[str, Any]] = queue.Queue()
    threading.Thread(target=_read_jobs, args=(sys.stdin, jobs), daemon=True).start()
    _send(out, {"ready": True})
    while True:
        job = jobs.get()
        _send(out, {"started": True})
        last = 0.0

        def progress(fraction: float) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= _PROGRESS_EVERY or fraction >= 1.0:  # the end is never thinned out
                last = now
                _send(out, {"progress": round(fraction, 4)})

        try:
            report = remove(
                Path(job["src"]),
                Path(job["dst"]),
                EngineOptions(**job["options"]),
                Limits(**job["limits"]),
                progress,
            )
        except RemoverError as exc:
            _send(out, {"error": {"code": exc.code, "message": exc.message}})
        except Exception as exc:  # a bug, not the input: say what, keep the trace in the log
            traceback.print_exc()
            _send(out, {"error": {"code": "remover_failed", "message": f"{type(exc).__name__}: {exc}"}})
        else:
            _send(out, {"report": report.to_json()})


def _read_jobs(stdin: TextIO, jobs: queue.Queue[dict[str, Any]]) -> None:
    for line in stdin:
        if line.strip():
            jobs.put(json.loads(line))
    os._exit(0)  # the runner closed our stdin (or died): stop, even mid-job


def _send(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())

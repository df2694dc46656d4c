"""Request ids: unique across processes and restarts, ordered by time, and cheap to make.

`req_` + 11 hex digits of the time in ms + 8 random hex digits drawn once per process + a
6-digit counter. Time first keeps the indexes on request and hold ids append-mostly (a random
id lands on a random B-tree page of the usage log and the ledger); the per-process part keeps
workers apart; the counter keeps ids apart within a millisecond. No system call per id.
"""

from __future__ import annotations

import itertools
import os
import time

_process = os.urandom(4).hex()
_counter = itertools.count()


def _new_process() -> None:
    global _process
    _process = os.urandom(4).hex()  # a forked worker must not share its parent's ids


os.register_at_fork(after_in_child=_new_process)


def new_request_id() -> str:
    return f"req_{time.time_ns() // 1_000_000:011x}{_process}{next(_counter) & 0xFFFFFF:06x}"

"""The metrics the docs and the Grafana dashboard name are the ones the gateway exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from aitre.observe.metrics import Metrics

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCRAPE_TIME = {"aitre_tasks_open", "aitre_notify_pending", "aitre_scrape_database_up"}  # observe/scrape.py
SUFFIXES = ("_total", "_bucket", "_count", "_sum")


def _families() -> set[str]:
    """Each metric as the docs name it: counters with `_total`."""
    found = set(SCRAPE_TIME)
    for family in Metrics().registry.collect():
        found.add(family.name + "_total" if family.type == "counter" else family.name)
    return found


def _exposed() -> set[str]:
    return {n + s for n in _families() for s in ("", *SUFFIXES)}


def test_every_metric_named_in_the_docs_and_dashboard_exists() -> None:
    exposed = _exposed()
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    named = {n for e in exprs for n in re.findall(r"\baitre_[a-z_]+", e)}
    assert named and named <= exposed, named - exposed
    documented = set(re.findall(r"`(aitre_[a-z_]+)`", (DOCS / "metrics.md").read_text()))
    assert documented <= exposed, documented - exposed
    assert _families() <= documented, _families() - documented  # every metric is in the table

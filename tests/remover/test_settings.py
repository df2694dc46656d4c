"""The remover's settings reach the runner: env vars -> Settings -> RemoverConfig."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from aitre.config import Settings
from aitre.watermark import RemoverConfig


def test_settings_become_the_runner_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    mark = tmp_path / "mark.png"
    env = {
        "AITRE_REMOVER_WORKERS": "3",
        "AITRE_REMOVER_QUEUE": "7",
        "AITRE_REMOVER_JOB_TIMEOUT_SECONDS": "90",
        "AITRE_REMOVER_MAX_BYTES": "1000",
        "AITRE_REMOVER_MAX_SECONDS": "12.5",
        "AITRE_REMOVER_MAX_PIXELS": "921600",
        "AITRE_REMOVER_MARK_PATH": str(mark),
        "AITRE_REMOVER_MARK_REFERENCE_SIZE": "1080",
        "AITRE_REMOVER_MATCH_THRESHOLD": "0.7",
        "AITRE_REMOVER_METHOD": "inpaint",
        "AITRE_REMOVER_WHEN_NO_MARK": "passthrough",
        "AITRE_REMOVER_CRF": "20",
        "AITRE_REMOVER_PRESET": "faster",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    config = RemoverConfig.from_settings(Settings())
    assert (config.workers, config.queue, config.job_timeout) == (3, 7, 90.0)
    assert (config.limits.max_bytes, config.limits.max_seconds, config.limits.max_pixels) == (
        1000,
        12.5,
        921600,
    )
    o = config.options
    assert o.mark_path == str(mark) and o.reference_short_side == 1080 and o.threshold == 0.7
    assert (o.method, o.when_no_mark, o.crf, o.preset) == ("inpaint", "passthrough", 20, "faster")


def test_defaults_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    config = RemoverConfig.from_settings(Settings())
    assert config.workers == 1 and config.options.mark_path is None and config.options.method == "invert"
    assert config.options.when_no_mark == "fail"
    monkeypatch.setenv("AITRE_REMOVER_METHOD", "magic")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("AITRE_REMOVER_METHOD", "invert")
    monkeypatch.setenv("AITRE_REMOVER_WORKERS", "0")
    with pytest.raises(ValidationError):
        Settings()

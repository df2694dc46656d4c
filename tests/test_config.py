"""Settings: defaults, environment, TOML file; and the documented reference stays complete."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from aitre.cli.config import reference_table
from aitre.config import Settings
from tests.support.processes import aitre_cmd, base_env

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented_with_its_default() -> None:
    docs = (ROOT / "docs" / "configuration.md").read_text()
    assert reference_table() in docs, "docs/configuration.md is stale: paste `aitre config docs` into it"
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"


def test_defaults() -> None:
    s = Settings()
    assert (s.host, s.port) == ("127.0.0.1", 3000)
    assert s.resolved_database_url().startswith("sqlite+aiosqlite:///")
    assert s.resolved_public_url() == "http://127.0.0.1:3000"


def test_env_beats_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "aitre.toml"
    toml.write_text('port = 4100\nretries = 5\npublic_url = "https://gw.example.com/"\n')
    monkeypatch.setenv("AITRE_CONFIG_FILE", str(toml))
    monkeypatch.setenv("AITRE_PORT", "4200")
    s = Settings()
    assert s.port == 4200 and s.retries == 5
    assert s.resolved_public_url() == "https://gw.example.com"


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    env = base_env(AITRE_SECRET_KEY="very-secret", AITRE_DATA_DIR=str(tmp_path))
    out = subprocess.run(
        aitre_cmd("config", "show", "--json"), env=env, capture_output=True, text=True, check=True
    )
    assert "very-secret" not in out.stdout and "***" in out.stdout

"""The README's quick start, run as written: the run command starts a gateway, and the curl and
openai SDK examples below it work against it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.processes import base_env, free_port, wait_until

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def setup_commands() -> list[str]:
    first = code_blocks("bash")[0]
    return [line.split("#", 1)[0].strip() for line in first.strip().splitlines()]


def test_readme_opens_with_exactly_the_two_setup_commands() -> None:
    assert README.index("```bash") < README.index("## ")
    assert setup_commands() == ["./scripts/run", "./scripts/test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./scripts/test" in ci


def test_quick_start_as_written(tmp_path: Path) -> None:
    port = free_port()
    env = base_env(
        AITRE_PORT=str(port),
        AITRE_DATA_DIR=str(tmp_path / "data"),
        AITRE_VENV=sys.prefix,  # the already-installed environment: no second install
    )
    with (tmp_path / "run.log").open("wb") as log:
        server = subprocess.Popen(
            ["bash", "-c", setup_commands()[0]],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: _up(port) or server.poll() is not None, timeout=120)
        assert server.poll() is None, (tmp_path / "run.log").read_text()
        out = (tmp_path / "run.log").read_text()
        assert "Admin key:" in out and "User key:" in out

        curl_block = code_blocks("bash")[1]
        curl = subprocess.run(
            ["bash", "-c", curl_block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert curl.returncode == 0, curl.stderr
        reply = json.loads(curl.stdout)
        assert reply["choices"][0]["message"]["content"] == "This is a test!"
        assert reply["usage"]["prompt_tokens"] == 13

        keys = dict(
            line.removeprefix("export ").split("=", 1)
            for line in (tmp_path / "data" / "initial-keys.env").read_text().splitlines()
            if line.startswith("export ")
        )
        assert oct((tmp_path / "data" / "initial-keys.env").stat().st_mode & 0o777) == "0o600"
        script = tmp_path / "example.py"
        script.write_text(code_blocks("python")[0])
        sdk = subprocess.run(
            [sys.executable, str(script)], env={**env, **keys}, capture_output=True, text=True, timeout=60
        )
        assert sdk.returncode == 0, sdk.stderr
        lines = sdk.stdout.splitlines()
        assert lines[0] == "This is a test!"
        assert len(lines[1].split()) > 5
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def _up(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False

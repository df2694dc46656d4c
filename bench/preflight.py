"""What the run needs before it starts: system tools, the LiteLLM virtualenv, two cores."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.nginx import JS_MODULE

# Debian packages, and how to tell each is there. libnginx-mod-http-js is the njs module the
# fake upstream uses to route stream and non-stream requests (see nginx.py).
_PACKAGES: tuple[tuple[str, Callable[[], bool]], ...] = (
    ("nginx", lambda: shutil.which("nginx") is not None),
    ("libnginx-mod-http-js", JS_MODULE.exists),
    ("wrk", lambda: shutil.which("wrk") is not None),
    ("util-linux", lambda: shutil.which("taskset") is not None),
)

LITELLM_SPEC = "litellm[proxy]"


def ensure_tools(say: Callable[[str], None]) -> None:
    missing = [pkg for pkg, present in _PACKAGES if not present()]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(f"missing: {' '.join(missing)}; install them (Debian: apt-get install -y ...)")
    say(f"installing missing system packages with apt-get: {' '.join(missing)}")
    cmd = ["apt-get", "install", "-y", "-q", *missing]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(cmd, env=env, check=False).returncode != 0:
        say("apt-get install failed; running apt-get update and trying once more")
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        subprocess.run(cmd, env=env, check=True)
    still = [pkg for pkg, present in _PACKAGES if not present()]
    if still:
        raise SystemExit(f"still missing after apt-get: {' '.join(still)}")


def ensure_litellm(venv: Path, say: Callable[[str], None]) -> tuple[Path | None, str]:
    """The `litellm` executable in its own throw-away virtualenv, created on first use (LiteLLM
    pins many packages that must not leak into aitre's venv). Returns (path, "") or (None, why)."""
    exe = venv / "bin" / "litellm"
    stamp = venv / ".bench-installed"
    if exe.exists() and stamp.exists():
        return exe, ""
    python = shutil.which("python3.11") or sys.executable
    say(f"installing {LITELLM_SPEC} into {venv} (first run only; a few minutes)")
    log = venv.parent / ".venv-litellm-install.log"
    try:
        with log.open("w") as fh:
            if not (venv / "bin" / "python").exists():
                venv_cmd = [python, "-m", "venv", str(venv)]
                subprocess.run(venv_cmd, stdout=fh, stderr=fh, check=True, timeout=300)
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", LITELLM_SPEC],
                stdout=fh,
                stderr=fh,
                check=True,
                timeout=1800,
            )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        return None, f"could not install {LITELLM_SPEC} ({exc}); see {log}"
    if not exe.exists():
        return None, f"{exe} missing after install; see {log}"
    stamp.touch()
    return exe, ""


def cores() -> tuple[str, str, str]:
    """(server core, load core, note). Server under test on one core, upstream and load
    generator on the other; with fewer than two usable cores everything shares core 0."""
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) >= 2:
        note = "" if len(usable) == 2 else f"{len(usable)} cores usable; only {usable[:2]} are used"
        return str(usable[0]), str(usable[1]), note
    only = str(usable[0])
    return only, only, "only one core usable: server and load share it, numbers are not comparable"

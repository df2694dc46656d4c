"""First start: an admin, a user, a key for each, and the simulator as the only channel, so that
a fresh install answers requests at once. Runs only when the database has no users."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts import repo as accounts
from aitre.accounts.keys import generate_key
from aitre.channels import repo as channels
from aitre.secrets import SecretBox
from aitre.simulator import catalog as sim_catalog
from aitre.store.models import User
from aitre.store.version import bump_version


@dataclass(frozen=True, slots=True)
class FirstKeys:
    admin_key: str
    user_key: str


async def bootstrap_if_empty(
    session: AsyncSession, box: SecretBox, with_simulator: bool, quota: int = 0
) -> FirstKeys | None:
    if (await session.scalar(select(func.count()).select_from(User))) != 0:
        return None
    admin = await accounts.create_user(session, "admin", role="admin", quota=quota)
    admin_key = await accounts.create_token(session, admin, name="admin")
    user = await accounts.create_user(session, "demo", role="user", quota=quota)
    user_key = await accounts.create_token(session, user, name="demo")
    if with_simulator:
        await channels.add_channel(
            session,
            box,
            name="simulator",
            type="simulator",
            secret=generate_key(),
            models=sim_catalog.all_models(),
            config={"auto_models": True},
        )
    await bump_version(session)
    return FirstKeys(admin_key=admin_key.key, user_key=user_key.key)


def write_keys_file(data_dir: Path, keys: FirstKeys, base_url: str) -> Path:
    """`<data_dir>/initial-keys.env`, readable by the owner only, for `source`-ing in a shell."""
    path = data_dir / "initial-keys.env"
    text = (
        "# Written once, on aitre's first start. Keys are stored hashed: this file is the only copy.\n"
        "# Delete it once you have put the keys somewhere safe.\n"
        f"export AITRE_BASE_URL={base_url}/v1\n"
        f"export AITRE_ADMIN_KEY={keys.admin_key}\n"
        f"export AITRE_USER_KEY={keys.user_key}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return path

"""`aitre token ...`"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from aitre.accounts import repo
from aitre.billing.usage_query import iso_time, parse_time
from aitre.cli.common import JsonOption, console, run_db, settings, split_csv, table
from aitre.secrets import SecretBox
from aitre.store.models import Token, User

app = typer.Typer(no_args_is_help=True)
_NONE = ("any", "none", "never", "unlimited", "")

QuotaOpt = Annotated[
    str | None, typer.Option(help="The key's own spending cap: units, dollars like $5, or `unlimited`.")
]
ExpiresOpt = Annotated[
    str | None, typer.Option(help="Expiry: an ISO date/time, +30d / +12h, ms since the epoch, or `never`.")
]
ModelsOpt = Annotated[str | None, typer.Option(help="Comma-separated models the key may use, or `any`.")]
IpsOpt = Annotated[str | None, typer.Option(help="Comma-separated client IPs/CIDRs allowed, or `any`.")]
RpmOpt = Annotated[int | None, typer.Option(help="Requests per minute (0: no limit).", min=0)]
TpmOpt = Annotated[int | None, typer.Option(help="Tokens per minute (0: no limit).", min=0)]
MapOpt = Annotated[
    list[str] | None, typer.Option("--map", help="Model rename FROM=TO for this key (repeatable).")
]


def parse_mapping(values: list[str], option: str = "--map") -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        src, sep, dst = item.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise ValueError(f"{option}: expected FROM=TO, got {item!r}")
        out[src.strip()] = dst.strip()
    return out


def key_settings(
    *,
    name: str | None = None,
    quota: str | None = None,
    expires: str | None = None,
    models: str | None = None,
    ips: str | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    mapping: list[str] | None = None,
) -> dict[str, Any]:
    """Command-line options as the settings `repo.create_key/update_key` take (only those given)."""
    out: dict[str, Any] = {}
    if name is not None:
        out["name"] = name
    if quota is not None:
        unlimited = quota.strip().lower() in _NONE
        out["quota"] = None if unlimited else repo.parse_amount(quota, settings().quota_per_usd)
    if expires is not None:
        out["expires_at"] = None if expires.strip().lower() in _NONE else parse_time(expires)
    if models is not None:
        out["allowed_models"] = None if models.strip().lower() in _NONE else split_csv(models)
    if ips is not None:
        out["allowed_ips"] = None if ips.strip().lower() in _NONE else split_csv(ips)
    for field, value in (("rpm", rpm), ("tpm", tpm)):
        if value is not None:
            out[field] = value
    if mapping is not None:
        out["model_mapping"] = parse_mapping(mapping)
    return out


@app.command("create", help="Create an API key for a user, with optional limits; the key is printed once.")
def create(
    user: Annotated[str, typer.Option(help="User name or id.")],
    name: Annotated[str, typer.Option(help="A label for the key.")] = "",
    quota: QuotaOpt = None,
    expires: ExpiresOpt = None,
    models: ModelsOpt = None,
    ips: IpsOpt = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    map: MapOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the key.")] = False,
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> repo.IssuedKey:
        changes = key_settings(
            name=name, quota=quota, expires=expires, models=models, ips=ips, rpm=rpm, tpm=tpm, mapping=map
        )
        owner = await repo.find_user(session, user)
        return await repo.create_key(session, owner, changes)

    issued = run_db(work)
    if quiet:
        print(issued.key)
    else:
        console.print(f"token {issued.token.id} created for {user}. Key (shown once):")
        console.print(issued.key, highlight=False)


def _status(t: Token) -> str:
    return "revoked" if t.revoked_at is not None else ("yes" if t.enabled else "paused")


@app.command("list", help="List API keys (never their secret part).")
def list_(
    user: Annotated[str, typer.Option(help="Only this user's keys.")] = "", as_json: JsonOption = False
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> list[tuple[Token, User]]:
        owner = await repo.find_user(session, user) if user else None
        return await repo.list_tokens(session, owner)

    rows = run_db(work, changes_catalog=False)
    cols = ["id", "user", "name", "key", "enabled", "quota", "used", "expires", "models", "ips", "rpm", "tpm"]
    table(
        "tokens",
        cols,
        [
            (
                t.id,
                u.username,
                t.name,
                t.key_hint,
                _status(t),
                "unlimited" if t.unlimited else t.remain_quota,
                t.used_quota,
                iso_time(t.expires_at) if t.expires_at else "never",
                ",".join(t.allowed_models or []) or "any",
                ",".join(t.allowed_ips or []) or "any",
                t.rpm,
                t.tpm,
            )
            for t, u in rows
        ],
        as_json,
    )


@app.command("update", help="Change a key's name, limits or status (only the options given).")
def update(
    ref: Annotated[str, typer.Argument(help="Token id or the key.")],
    name: Annotated[str | None, typer.Option(help="A new label.")] = None,
    quota: QuotaOpt = None,
    expires: ExpiresOpt = None,
    models: ModelsOpt = None,
    ips: IpsOpt = None,
    rpm: RpmOpt = None,
    tpm: TpmOpt = None,
    map: MapOpt = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Resume or pause the key.", show_default=False)
    ] = None,
) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> Token:
        changes = key_settings(
            name=name, quota=quota, expires=expires, models=models, ips=ips, rpm=rpm, tpm=tpm, mapping=map
        )
        if enabled is not None:
            changes["enabled"] = enabled
        if not changes:
            raise ValueError("nothing to change: give at least one option (see --help)")
        return await repo.update_key(session, await repo.find_token(session, ref), changes)

    token = run_db(work)
    console.print(f"token {token.id} updated")


@app.command("revoke", help="Revoke an API key (by id or by the key itself).")
def revoke(ref: Annotated[str, typer.Argument(help="Token id or the key.")]) -> None:
    async def work(session: AsyncSession, box: SecretBox) -> Token:
        return await repo.revoke_token(session, ref)

    token = run_db(work)
    console.print(f"token {token.id} revoked")

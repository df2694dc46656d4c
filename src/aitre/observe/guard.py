"""Who may scrape `/metrics`.

Off unless configured: without `AITRE_METRICS_TOKEN` and `AITRE_METRICS_ALLOW_IPS` the route
answers 404, as if it did not exist. A token asks for `Authorization: Bearer <token>`; an
allow-list asks for the client's address (behind a trusted proxy: the one it forwarded for) to
be in it; with both, both. A gateway behind a reverse proxy on the same host sees every client
come from 127.0.0.1, so "loopback may scrape" is never a default.
"""

from __future__ import annotations

import hmac

from aitre.errors import ApiError
from aitre.security.forwarded import ForwardedFor


class ScrapeGuard:
    def __init__(self, token: str, allow_ips: list[str]) -> None:
        self.token = token.encode()
        self.allowed = ForwardedFor(allow_ips) if allow_ips else None

    @property
    def enabled(self) -> bool:
        return bool(self.token) or self.allowed is not None

    def check(self, address: str, authorization: str | None) -> None:
        """Raises 403 or 401 unless the scrape may go on (the caller answers 404 when not `enabled`)."""
        if self.allowed is not None and not self.allowed.trusts(address):
            raise ApiError(403, "This address may not read the metrics.", code="metrics_forbidden")
        if self.token:
            scheme, _, value = (authorization or "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), self.token):
                raise ApiError(
                    401,
                    "The metrics need `Authorization: Bearer <AITRE_METRICS_TOKEN>`.",
                    type="invalid_request_error",
                    code="invalid_metrics_token",
                )

"""Everything a running gateway holds, created in the lifespan and reached via `request.app.state`.

No module-level mutable state: two apps in one process (tests do this) never share anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aitre.adapters.base import Adapter
from aitre.billing.accountant import Accountant
from aitre.billing.books import Books
from aitre.billing.instances import Instance
from aitre.billing.usage_log import UsageRecorder
from aitre.catalog import Catalog
from aitre.channels.health import ChannelHealth
from aitre.channels.model import ChannelInfo
from aitre.channels.ops import ChannelOps
from aitre.cluster import Cluster
from aitre.config import Settings
from aitre.media.fetch import MediaFetcher
from aitre.media.store import MediaStore
from aitre.observe.guard import ScrapeGuard
from aitre.observe.logs import LogPipe
from aitre.observe.metrics import Metrics
from aitre.relay.upstream import Upstream
from aitre.runtime_settings import RuntimeSettings
from aitre.secrets import SecretBox
from aitre.security.forwarded import ForwardedFor
from aitre.tasks.engine import TaskEngine
from aitre.tokenizer import Tokenizer


@dataclass(slots=True)
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    box: SecretBox
    catalog: Catalog
    upstream: Upstream
    recorder: UsageRecorder
    books: Books
    instance: Instance
    tokenizer: Tokenizer
    adapters: dict[str, Adapter]
    media: MediaStore
    fetcher: MediaFetcher
    accountant: Accountant
    health: ChannelHealth
    channel_ops: ChannelOps
    forwarded: ForwardedFor
    metrics: Metrics
    scrape_guard: ScrapeGuard
    logs: LogPipe
    runtime: RuntimeSettings
    cluster: Cluster | None = None  # with Redis: what the instances tell each other
    tasks: TaskEngine = field(init=False)  # made once the rest exists (it runs on all of it)

    def adapter_for(self, channel: ChannelInfo) -> Adapter:
        return self.adapters[channel.type]

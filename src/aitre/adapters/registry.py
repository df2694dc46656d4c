"""Channel type -> adapter. Adding a provider = one module plus one line here."""

from __future__ import annotations

from aitre.adapters.base import Adapter
from aitre.adapters.bfl_flux import BflAdapter
from aitre.adapters.chat_video import ChatVideoAdapter
from aitre.adapters.mj_proxy import MjProxyAdapter
from aitre.adapters.openai_compat import OpenAICompatAdapter
from aitre.adapters.simulator import SimulatorAdapter
from aitre.adapters.videos_api import VideosAdapter
from aitre.remover.protocol import LocalRemoverAdapter


def build_registry() -> dict[str, Adapter]:
    return {
        "openai": OpenAICompatAdapter(),
        "bfl": BflAdapter(),
        "midjourney-proxy": MjProxyAdapter(),
        "simulator": SimulatorAdapter(),
        "videos": VideosAdapter(),
        "chat-video": ChatVideoAdapter(),
        "local-remover": LocalRemoverAdapter(),
    }

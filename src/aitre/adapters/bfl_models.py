"""The Flux models Black Forest Labs serves (kept apart from the adapter: cheap to import)."""

from __future__ import annotations

BFL_MODELS = (
    "flux",
    "flux-dev",
    "flux-pro",
    "flux-pro-1.1",
    "flux-pro-1.1-ultra",
    "flux-kontext-pro",
    "flux-kontext-max",
    "flux-schnell",
    "flux-2-pro",
    "flux-2-max",
    "flux-2-flex",
)
DEFAULT_FLUX_MAPPING = {"flux": "flux-dev"}

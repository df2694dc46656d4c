"""Fixtures for driving the real simulator process: the official SDK and a plain HTTP client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.support.processes import Simulator


@pytest.fixture
def sdk(simulator: Simulator) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=simulator.url + "/v1", api_key=simulator.key, max_retries=0)
    yield client
    client.close()


@pytest.fixture
def http(simulator: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=simulator.url, headers=simulator.headers, timeout=60) as client:
        yield client

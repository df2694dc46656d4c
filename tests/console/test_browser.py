"""The console in a real browser (Playwright driving Debian's /usr/bin/chromium): an operator adds
a channel pointing at a simulator, prices its model, creates a user and a key; the user signs in
with that key, streams a chat in the playground, sees it in the logs and on the dashboard, runs
an MJ imagine and presses a button on the grid. Every page is screenshotted (desktop and phone
widths) into test-artifacts/console/, checked for labels, alt texts, a skip link, no JavaScript
errors, and no sideways scrolling at a phone's width."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.kit import admin_api, pages, unique
from tests.support.processes import SIM_KEY, Gateway, Simulator

CHROMIUM = os.environ.get("AITRE_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

playwright_api = pytest.importorskip("playwright.async_api")
HAVE_CHROMIUM = Path(CHROMIUM).exists()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    if not HAVE_CHROMIUM:
        pytest.fail(
            f"{CHROMIUM} is missing: scripts/test installs Debian's chromium (apt-get install chromium)"
        )
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    print(f"\nscreenshots: {ARTIFACTS}")
    async with playwright_api.async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        await b.close()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    sim = Simulator(tmp_path_factory.mktemp("browser-sim")).start()
    yield sim
    sim.stop()


class Tab:
    """A page that records JavaScript errors and answers confirm() dialogs with OK."""

    @classmethod
    async def open(cls, browser: Any, gw: Gateway, viewport: dict[str, int] = DESKTOP) -> Tab:
        tab = cls()
        tab.context = await browser.new_context(viewport=viewport)
        tab.page = await tab.context.new_page()
        tab.gw = gw
        tab.errors = []
        tab.page.on("pageerror", lambda e: tab.errors.append(str(e)))
        tab.page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
        tab.page.on("dialog", lambda d: d.accept())
        return tab

    context: Any
    page: Any
    gw: Gateway
    errors: list[str]

    async def go(self, path: str) -> Any:
        response = await self.page.goto(self.gw.url + path)
        assert response is not None and response.status == 200, (path, response and response.status)
        return self.page

    async def shot(self, name: str) -> None:
        await self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    async def sign_in(self, key: str) -> None:
        await self.go("/sign-in")
        await self.page.get_by_role("textbox", name="API key").fill(key)
        await self.page.get_by_role("button", name="Sign in").click()
        await self.page.wait_for_url(re.compile(r"/(admin|me)$"))

    async def flash(self) -> str:
        return str(await self.page.locator(".flash").inner_text())

    async def close(self) -> None:
        await self.context.close()


async def check_page(tab: Tab, phone: bool = False) -> None:
    """What every page must have: a language, a skip link, labelled controls, images with alt
    text, and (at a phone's width) no page-wide sideways scrolling."""
    problems = await tab.page.evaluate(
        """() => {
          const out = [];
          if (!document.documentElement.lang) out.push('no lang');
          if (!document.querySelector('a.skip[href="#main"]')) out.push('no skip link');
          for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
            if (el.hidden || el.closest('[hidden]')) continue;
            const named = el.labels && el.labels.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby');
            if (!named) out.push('unlabelled ' + el.outerHTML.slice(0, 80));
          }
          for (const img of document.querySelectorAll('img')) if (!img.hasAttribute('alt')) out.push('no alt ' + img.src);
          const ids = [...document.querySelectorAll('[id]')].map(e => e.id);
          for (const id of new Set(ids)) if (ids.indexOf(id) !== ids.lastIndexOf(id)) out.push('duplicate id ' + id);
          for (const b of document.querySelectorAll('button')) if (!b.textContent.trim() && !b.getAttribute('aria-label')) out.push('unnamed button');
          return out;
        }"""
    )
    assert problems == [], (tab.page.url, problems)
    if phone:
        wide = await tab.page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert wide <= 1, (tab.page.url, f"{wide}px of sideways scrolling at a phone's width")


async def test_operator_and_user_flow_in_a_browser(browser: Any, gw: Gateway, upstream: Simulator) -> None:
    ops = await Tab.open(browser, gw)
    await ops.go("/")
    assert ops.page.url.endswith("/sign-in")
    await ops.shot("sign-in")
    await check_page(ops)
    # keyboard: the first Tab reaches the skip link
    await ops.page.keyboard.press("Tab")
    assert await ops.page.evaluate("() => document.activeElement.className") == "skip"
    await ops.sign_in(gw.admin_key)

    # --- the operator adds a channel pointing at the simulator, and prices its model
    model = unique("browser-model")
    await ops.go("/admin/channels")
    form = ops.page.locator("form[action='/admin/channels']")
    await form.get_by_label("Name").fill(unique("sim-channel"))
    await form.get_by_label("Base URL").fill(upstream.url + "/v1")
    await form.get_by_label("Upstream key").fill(SIM_KEY)
    await form.get_by_label("Models").fill(model)
    await form.get_by_label("Model mapping").fill(f"{model}=gpt-4o-mini")
    await form.get_by_role("button", name="Add channel").click()
    await ops.page.wait_for_url(re.compile(r"/admin/channels/\d+$"))
    assert "added" in await ops.flash()
    await ops.page.get_by_role("button", name="Test now").click()
    await ops.page.wait_for_selector(".flash >> text=answered the test")
    await ops.shot("admin-channel")
    await ops.go("/admin/prices")
    price = ops.page.locator("form[action='/admin/prices'][method='post']")
    await price.get_by_label("Model", exact=True).fill(model)
    await price.get_by_label("Input per 1M tokens (USD)", exact=True).fill("1")
    await price.get_by_label("Output per 1M tokens (USD)", exact=True).fill("2")
    await price.get_by_role("button", name="Set price").click()
    await ops.page.wait_for_selector(f".flash >> text=Price of {model} set.")

    # --- a user and a key for them
    name = unique("alice")
    await ops.go("/admin/users")
    form = ops.page.locator("form[action='/admin/users']")
    await form.get_by_label("User name").fill(name)
    await form.get_by_label("Starting balance (USD)").fill("5")
    await form.get_by_role("button", name="Create user").click()
    await ops.page.wait_for_url(re.compile(r"/admin/users/\d+$"))
    user_id = int(ops.page.url.rsplit("/", 1)[1])
    await ops.shot("admin-user")
    await ops.page.get_by_role("link", name=f"Create a key for {name}").click()
    await ops.page.wait_for_url(re.compile(r"/admin/keys"))
    await ops.page.locator("form[action='/admin/keys']").get_by_label("Name").fill("browser")
    await ops.page.get_by_role("button", name="Create key").click()
    await ops.page.wait_for_selector("input[data-secret]")
    key = await ops.page.locator("input[data-secret]").input_value()
    assert re.fullmatch(r"sk-[A-Za-z0-9]{48}", key)
    await ops.page.get_by_role("button", name="Copy").click()

    # --- the user signs in with it and streams a chat in the playground
    me = await Tab.open(browser, gw)
    await me.sign_in(key)
    assert me.page.url.endswith("/me")
    await me.go("/me/playground")
    assert "Using key sk-" in await me.page.locator("#pg-key-state").inner_text()
    await me.page.locator("#chat-model").fill(model)
    await me.page.get_by_label("Message").fill("Tell me about the sea")
    await me.page.get_by_role("button", name="Send").click()
    await me.page.wait_for_selector("#chat-out[data-done='1']", timeout=20_000)
    answer = await me.page.locator("#chat-out").inner_text()
    meta = await me.page.locator("#chat-meta").inner_text()
    chunks = re.search(r"Done: (\d+) chunks", meta)
    assert len(answer) > 10 and chunks is not None, (answer, meta)
    assert int(chunks.group(1)) > 1  # streamed, not one block
    await me.shot("me-playground-chat")

    # --- the request in the logs and on the dashboard
    await me.go("/me/logs")
    assert await me.page.locator("tbody tr").filter(has_text=model).count() == 1
    await me.shot("me-logs")
    await me.go("/me")
    assert await me.page.locator("table").filter(has_text=model).count() == 1
    await ops.go(f"/admin/logs?user_id={user_id}")
    row = ops.page.locator("tbody tr").filter(has_text=model)
    assert await row.count() == 1 and "stream" in await row.inner_text()
    await ops.go(f"/admin?user_id={user_id}")
    assert await ops.page.locator("#total-requests").inner_text() == "1"
    assert await ops.page.locator("table").filter(has_text=model).count() == 1
    assert await ops.page.locator("#c-requests canvas").count() == 1  # the chart was drawn
    await ops.shot("admin-dashboard")

    # --- Midjourney: imagine, see the grid, press a button
    await me.go("/me/playground")
    await me.page.get_by_role("tab", name="Midjourney").click()
    await me.page.locator("#mj-prompt").fill("a lighthouse in a storm")
    await me.page.get_by_role("button", name="Imagine").click()
    grid = me.page.locator("#mj-image")
    await grid.wait_for(timeout=30_000)
    await me.page.wait_for_function(
        "() => document.querySelector('#mj-image').naturalWidth > 0", timeout=10_000
    )
    first_src = await grid.get_attribute("src")
    assert first_src is not None and first_src.startswith("/media/")
    assert await me.page.locator("#mj-buttons button").count() >= 4
    await me.page.locator("#mj-buttons button", has_text="U1").click()
    await me.page.wait_for_function(
        "(src) => { const i = document.querySelector('#mj-image'); return i && i.getAttribute('src') !== src && i.naturalWidth > 0; }",
        arg=first_src,
        timeout=30_000,
    )
    await me.shot("me-playground-mj")

    # --- the operator sees the tasks with their pictures
    await ops.go(f"/admin/tasks?user_id={user_id}")
    assert await ops.page.locator("#results tbody tr").count() == 2
    await ops.page.wait_for_function(
        "() => [...document.querySelectorAll('tbody img')].every(i => i.naturalWidth > 0)"
    )
    await ops.shot("admin-tasks")
    await ops.page.locator("#results tbody tr").last.locator("a").first.click()
    await ops.page.wait_for_url(re.compile(r"/admin/tasks/\d+$"))
    assert await ops.page.locator(".media img").count() == 1
    assert await ops.page.locator("[data-mj-buttons] button:disabled").count() >= 4  # another user's task
    await ops.shot("admin-task")
    async with httpx.AsyncClient() as client:
        assert (await client.get(gw.url + first_src)).status_code == 200

    # --- every page: screenshot, accessibility basics, phone width
    phone = await Tab.open(browser, gw, PHONE)
    await phone.context.add_cookies(await ops.context.cookies())
    for path in pages("GET", admin=True) + pages("GET", admin=False):
        if path.endswith(".csv") or path == "/admin/tasks/1":
            continue
        slug = path.strip("/").replace("/", "-")
        await ops.go(path)
        await check_page(ops)
        await ops.shot(slug)
        await phone.go(path)
        await check_page(phone, phone=True)
        await phone.shot(slug + "-phone")
    await phone.go("/admin")
    await phone.page.get_by_text("Menu").click()
    assert await phone.page.get_by_role("link", name="Usage logs").is_visible()
    await phone.shot("admin-phone-menu")

    assert ops.errors == [] and me.errors == [] and phone.errors == [], (ops.errors, me.errors, phone.errors)
    for tab in (ops, me, phone):
        await tab.close()


async def test_playground_video_when_the_video_api_is_there(browser: Any, gw: Gateway) -> None:
    """OpenAI's /v1/videos (created, polled, its content played in the page)."""
    async with httpx.AsyncClient() as client:
        auth = {"Authorization": f"Bearer {gw.user_key}"}
        probe = await client.post(gw.url + "/v1/videos", json={}, headers=auth)
    if probe.status_code in (404, 405):
        pytest.skip("/v1/videos is not in this build yet")
    user = admin_api(gw, "POST", "/users", json={"username": unique("v"), "usd": "20"})
    key = admin_api(gw, "POST", "/keys", json={"user_id": user["id"]})["key"]
    me = await Tab.open(browser, gw)
    await me.sign_in(key)
    await me.go("/me/playground")
    await me.page.get_by_role("tab", name="Video").click()
    await me.page.get_by_role("button", name="Make the video").click()
    await me.page.wait_for_function(
        "() => { const v = document.querySelector('#video-out'); return v && !v.hidden && v.readyState >= 1; }",
        timeout=60_000,
    )
    await me.shot("me-playground-video")
    assert me.errors == []
    await me.close()

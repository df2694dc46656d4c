"""The simulator speaks midjourney-proxy: tasks on a clock, real pictures, the buttons and what
they make, describe, shorten, blend, swap_face, the modal flow and the task queries."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from aitre.simulator.app import create_simulator_app
from tests.simulator.mjkit import (
    STEP,
    act,
    array_url,
    data_url,
    done,
    fetch,
    picture,
    pixels,
    pressed,
    quadrants,
    run,
    submit,
)
from tests.support.processes import Simulator

KEYCAPS = [f"{n}\ufe0f\u20e3" for n in range(1, 6)]


@pytest.fixture(autouse=True)
def fast_clock(http: httpx.Client) -> Iterator[None]:
    r = http.post("/_sim/config", json={"mj_step_seconds": STEP, "mj_steps": 5})
    assert r.json()["mj_step_seconds"] == STEP
    yield
    http.post("/_sim/config", json={"mj_step_seconds": 0.2, "mj_steps": 5}).raise_for_status()


def test_imagine_runs_on_a_clock_to_a_real_grid(http: httpx.Client, simulator: Simulator) -> None:
    http.post("/_sim/config", json={"mj_step_seconds": 0.2}).raise_for_status()  # room to see each step
    answer = submit(http, "imagine", prompt="a red fox in the snow", state="mine", botType="MID_JOURNEY")
    assert answer["code"] == 1 and answer["description"] == "提交成功"
    task_id = answer["result"]
    assert isinstance(task_id, str) and len(task_id) == 16 and task_id.isdigit()
    assert answer["properties"]["discordInstanceId"]
    task, seen = run(http, task_id)
    assert seen[0] == ("SUBMITTED", "0%")
    assert seen[-1] == ("SUCCESS", "100%")
    progress = [int(p.rstrip("%")) for s, p in seen if s == "IN_PROGRESS"]
    assert progress and progress == sorted(progress) and set(progress) <= {20, 40, 60, 80}
    assert task["action"] == "IMAGINE" and task["state"] == "mine"
    assert task["prompt"] == task["promptEn"] == task["properties"]["finalPrompt"] == "a red fox in the snow"
    assert task["description"] == "/imagine a red fox in the snow"
    assert task["submitTime"] <= task["startTime"] < task["finishTime"]
    assert task["failReason"] is None and task["botType"] == "MID_JOURNEY"
    labels = [b["label"] or b["emoji"] for b in task["buttons"]]
    assert labels == ["U1", "U2", "U3", "U4", "🔄", "V1", "V2", "V3", "V4"]
    h = task["properties"]["messageHash"]
    assert task["buttons"][0]["customId"] == f"MJ::JOB::upsample::1::{h}"
    assert task["buttons"][4]["customId"] == f"MJ::JOB::reroll::0::{h}::SOLO"
    assert all(b["type"] == 2 and b["style"] == 2 for b in task["buttons"])
    assert re.fullmatch(rf"{simulator.url}/mj/image/{task_id}-[0-9a-f]{{24}}\.png", task["imageUrl"])
    # The name is the link's only secret: the task id alone, or a wrong token, finds nothing.
    assert httpx.get(f"{simulator.url}/mj/image/{task_id}.png").status_code == 404
    assert httpx.get(task["imageUrl"].replace(".png", "0.png")).status_code == 404
    grid = picture(task["imageUrl"])
    assert grid.size == (1024, 1024)
    tiles = [pixels(q) for q in quadrants(grid)]
    assert all(not np.array_equal(a, b) for i, a in enumerate(tiles) for b in tiles[i + 1 :])
    # The same picture on every download, and for the same prompt again.
    assert np.array_equal(pixels(picture(task["imageUrl"])), pixels(grid))
    again = done(http, "imagine", prompt="a red fox in the snow")
    assert np.array_equal(pixels(picture(again["imageUrl"])), pixels(grid))


def test_a_running_task_links_a_preview(http: httpx.Client) -> None:
    http.post("/_sim/config", json={"mj_step_seconds": 1.0}).raise_for_status()
    task_id = submit(http, "imagine", prompt="a slow boat")["result"]
    task = fetch(http, task_id)
    assert task["status"] == "SUBMITTED" and task["imageUrl"] is None and task["buttons"] == []
    while (task := fetch(http, task_id))["status"] == "SUBMITTED":
        time.sleep(0.02)
    assert task["status"] == "IN_PROGRESS" and task["progress"] == "20%"
    assert re.search(rf"/mj/image/{task_id}-[0-9a-f]{{24}}\.png\?progress=20$", task["imageUrl"])
    assert picture(task["imageUrl"]).size == (256, 256)
    assert task["buttons"] == [] and "messageHash" not in task["properties"]


def test_aspect_ratio_sets_the_tiles(http: httpx.Client) -> None:
    task = done(http, "imagine", prompt="a wide valley --ar 16:9")
    w, h = picture(task["imageUrl"]).size
    assert abs(w / h - 16 / 9) < 0.02 and w % 16 == 0 and h % 16 == 0


def test_reference_images_show_on_every_tile(http: httpx.Client) -> None:
    ref = data_url((90, 90), (10, 20, 230, 255))
    task = done(http, "imagine", prompt="like this one", base64Array=[ref])
    for tile in quadrants(picture(task["imageUrl"])):
        assert tile.getpixel((60, 60)) == (10, 20, 230)  # its thumbnail in the top-left corner
    plain = done(http, "imagine", prompt="like this one")
    assert [q.getpixel((60, 60)) for q in quadrants(picture(plain["imageUrl"]))] != [(10, 20, 230)] * 4
    assert submit(http, "imagine", prompt="x", base64Array=[ref] * 11)["code"] == 4


def test_upscale_is_the_tile_alone(http: httpx.Client) -> None:
    grid_task = done(http, "imagine", prompt="four little houses")
    grid = picture(grid_task["imageUrl"])
    for n in (1, 4):
        up = pressed(http, grid_task, f"U{n}")
        assert up["action"] == "UPSCALE" and up["prompt"] == "four little houses"
        assert up["description"] == f"/up {grid_task['id']} U{n}"
        assert up["customId"] == grid_task["buttons"][n - 1]["customId"]
        image = picture(up["imageUrl"])
        assert image.size == (512, 512)
        assert np.array_equal(pixels(image), pixels(quadrants(grid)[n - 1]))
    labels = [b["label"] or b["emoji"] for b in up["buttons"]]
    assert labels == [
        "Upscale (Subtle)",
        "Upscale (Creative)",
        "Vary (Subtle)",
        "Vary (Strong)",
        "Vary (Region)",
        "Zoom Out 2x",
        "Zoom Out 1.5x",
        "Custom Zoom",
        "⬅️",
        "➡️",
        "⬆️",
        "⬇️",
        "❤️",
    ]
    h = up["properties"]["messageHash"]
    ids = {b["customId"] for b in up["buttons"]}
    assert {
        f"MJ::Outpaint::50::1::{h}::SOLO",
        f"MJ::JOB::pan_left::1::{h}::SOLO",
        f"MJ::Inpaint::1::{h}::SOLO",
    } <= ids
    assert f"MJ::CustomZoom::{h}" in ids


def test_variation_and_reroll_make_new_grids(http: httpx.Client) -> None:
    grid_task = done(http, "imagine", prompt="a lighthouse")
    grid = pixels(picture(grid_task["imageUrl"]))
    first, tile = (pixels(q) for q in quadrants(picture(grid_task["imageUrl"]))[:2])
    vary = pressed(http, grid_task, "V2")
    assert vary["action"] == "VARIATION" and vary["description"].endswith(" V2")
    v = picture(vary["imageUrl"])
    assert v.size == (1024, 1024) and not np.array_equal(pixels(v), grid)
    # Derived from tile 2: each new tile is closer to it than to the grid's tile 1.
    for q in quadrants(v):
        assert np.abs(pixels(q) - tile).mean() < np.abs(pixels(q) - first).mean()
    reroll = pressed(http, grid_task, "🔄")
    assert reroll["action"] == "REROLL" and reroll["prompt"] == "a lighthouse"
    r = picture(reroll["imageUrl"])
    assert r.size == (1024, 1024) and not np.array_equal(pixels(r), grid)
    assert [b["label"] or b["emoji"] for b in reroll["buttons"]][:5] == ["U1", "U2", "U3", "U4", "🔄"]


def test_zoom_pan_and_hd_upscale_on_an_upscaled_image(http: httpx.Client) -> None:
    up = pressed(http, done(http, "imagine", prompt="a cabin"), "U1")
    zoom = pressed(http, up, "Zoom Out 2x")
    assert zoom["action"] == "ZOOM" and picture(zoom["imageUrl"]).size == (1024, 1024)
    assert [b["label"] for b in zoom["buttons"]][:4] == ["U1", "U2", "U3", "U4"]
    left = pressed(http, up, "⬅️")
    assert left["action"] == "PAN"
    w, h = picture(left["imageUrl"]).size
    assert abs(w / h - 1.5) < 0.02
    down = pressed(http, up, "⬇️")
    w, h = picture(down["imageUrl"]).size
    assert abs(h / w - 1.5) < 0.02
    hd = pressed(http, up, "Upscale (Subtle)")
    assert hd["action"] == "UPSCALE" and picture(hd["imageUrl"]).size == (1024, 1024)
    assert "Upscale (Subtle)" not in [b["label"] for b in hd["buttons"]]
    strong = pressed(http, up, "Vary (Strong)")
    assert strong["action"] == "VARIATION" and picture(strong["imageUrl"]).size == (1024, 1024)
    heart = act(http, up, "❤️")
    assert heart["code"] == 1 and heart["result"] == up["id"]


def test_blend_mixes_the_images(http: httpx.Client) -> None:
    red, blue = data_url((80, 80), (230, 10, 10, 255)), data_url((60, 90), (10, 10, 230, 255))
    task = done(http, "blend", base64Array=[red, blue], dimensions="PORTRAIT")
    assert task["action"] == "BLEND" and task["description"] == f"/blend {task['id']} 2"
    grid = picture(task["imageUrl"])
    w, h = grid.size
    assert abs(h / w - 1.5) < 0.02
    means = [pixels(q).reshape(-1, 3).mean(axis=0) for q in quadrants(grid)]
    assert means[0][0] > means[0][2] > 50  # tile 1 favours the first image
    assert means[1][2] > means[1][0] > 50  # tile 2 the second
    assert task["buttons"][0]["label"] == "U1"
    square = done(http, "blend", base64Array=[red, blue, red])
    assert picture(square["imageUrl"]).size == (1024, 1024)


def test_describe_gives_four_prompts_and_picks_one(http: httpx.Client) -> None:
    task = done(http, "describe", base64=data_url((300, 200), (20, 160, 40, 255)))
    assert task["action"] == "DESCRIBE" and task["description"] == f"/describe {task['id']}.png"
    text = task["properties"]["finalPrompt"]
    assert task["prompt"] == task["promptEn"] == text
    lines = text.split("\n\n")
    assert [line[: len(KEYCAPS[i])] for i, line in enumerate(lines)] == KEYCAPS[:4]
    assert all("green" in line and line.endswith("--ar 3:2") for line in lines)
    assert picture(task["imageUrl"]).size == (300, 200)
    assert [b["customId"] for b in task["buttons"]] == [
        *(f"MJ::Job::PicReader::{i}" for i in range(1, 5)),
        "MJ::Picread::Retry",
    ]
    pick = act(http, task, "2")
    assert pick["code"] == 21 and pick["description"] == "Waiting for window confirm"
    chosen = lines[1][len(KEYCAPS[1]) :].strip()
    assert pick["properties"] == {"finalPrompt": chosen, "remix": True}
    waiting = fetch(http, pick["result"])
    assert waiting["status"] == "MODAL" and waiting["action"] == "IMAGINE" and waiting["imageUrl"] is None
    ok = submit(http, "modal", taskId=pick["result"], prompt=chosen)
    assert ok["code"] == 1 and ok["result"] == pick["result"]
    made, _ = run(http, pick["result"])
    assert made["status"] == "SUCCESS" and made["promptEn"] == chosen
    assert picture(made["imageUrl"]).size == (1248, 832)  # the picked prompt's --ar 3:2
    again = pressed(http, task, "🔄")
    assert again["action"] == "DESCRIBE" and again["promptEn"].startswith(KEYCAPS[0])
    assert again["promptEn"] != task["promptEn"]  # described anew


def test_shorten_gives_five_prompts(http: httpx.Client) -> None:
    prompt = "a very detailed portrait of an old king, in the style of rembrandt, dramatic light --v 6"
    task = done(http, "shorten", prompt=prompt)
    assert task["action"] == "SHORTEN" and task["prompt"] == prompt and task["imageUrl"] is None
    text = task["properties"]["finalPrompt"]
    assert text.startswith("## Important tokens\n") and "\n## Shortened prompts\n" in text
    short = text.split("## Shortened prompts\n")[1].split("\n\n")
    assert [s[: len(KEYCAPS[i])] for i, s in enumerate(short)] == KEYCAPS
    lengths = [len(s) for s in short]
    assert lengths == sorted(lengths, reverse=True) and lengths[-1] < len(prompt)
    assert all(s.endswith("--v 6") for s in short)
    assert [b["customId"] for b in task["buttons"]] == [f"MJ::Job::PromptAnalyzer::{i}" for i in range(1, 6)]
    # The docs also spell it MJ::JOB::...; either picks the fifth prompt.
    pick = submit(http, "action", taskId=task["id"], customId="MJ::JOB::PromptAnalyzer::5")
    assert pick["code"] == 21
    assert pick["properties"]["finalPrompt"] == short[4][len(KEYCAPS[4]) :].strip()


def test_vary_region_goes_through_the_modal(http: httpx.Client) -> None:
    up = pressed(http, done(http, "imagine", prompt="a red door"), "U3")
    answer = act(http, up, "Vary (Region)")
    assert answer["code"] == 21 and answer["properties"]["remix"] is True
    task_id = answer["result"]
    waiting = fetch(http, task_id)
    assert waiting["status"] == "MODAL" and waiting["action"] == "INPAINT" and waiting["startTime"] is None
    assert waiting["prompt"] == "" and waiting["buttons"] == []
    no_mask = submit(http, "modal", taskId=task_id, prompt="a blue door")
    assert no_mask["code"] == 4
    assert submit(http, "modal", taskId=task_id, maskBase64=data_url())["code"] == 4  # no prompt
    # White marks what to repaint: the left half.
    mask = np.zeros((64, 64, 3), dtype=np.uint8)
    mask[:, :32] = 255
    ok = submit(http, "modal", taskId=task_id, prompt="a blue door", maskBase64=array_url(mask))
    assert ok["code"] == 1 and ok["result"] == task_id
    task, seen = run(http, task_id)
    assert seen[0][0] == "SUBMITTED" and task["status"] == "SUCCESS"
    assert task["action"] == "INPAINT" and task["prompt"] == task["promptEn"] == "a blue door"
    before, after = pixels(picture(up["imageUrl"])), pixels(quadrants(picture(task["imageUrl"]))[0])
    assert before.shape == after.shape == (512, 512, 3)
    assert np.array_equal(before[:, 300:], after[:, 300:])  # kept
    assert not np.array_equal(before[:, :200], after[:, :200])  # repainted
    assert submit(http, "modal", taskId=task_id, prompt="again")["code"] == 4  # no longer waiting


def test_custom_zoom_takes_its_factor_from_the_modal(http: httpx.Client) -> None:
    up = pressed(http, done(http, "imagine", prompt="a windmill"), "U2")
    answer = act(http, up, "Custom Zoom")
    assert answer["code"] == 21 and fetch(http, answer["result"])["status"] == "MODAL"
    assert submit(http, "modal", taskId=answer["result"], prompt="a windmill --zoom 1.5")["code"] == 1
    task, _ = run(http, answer["result"])
    assert task["action"] == "ZOOM" and task["status"] == "SUCCESS"
    assert picture(task["imageUrl"]).size == (1024, 1024)


def test_swap_face_pastes_the_face_on_the_target(http: httpx.Client) -> None:
    face, target = data_url((40, 40), (240, 0, 0, 255)), data_url((300, 200), (0, 200, 0, 255))
    for path in ("/mj/insight-face/swap", "/mj/submit/swap_face"):
        r = http.post(path, json={"sourceBase64": face, "targetBase64": target})
        assert r.json()["code"] == 1
        task, _ = run(http, r.json()["result"])
        assert task["action"] == "SWAP_FACE" and task["status"] == "SUCCESS" and task["buttons"] == []
        img = pixels(picture(task["imageUrl"]))
        assert img.shape == (200, 300, 3)
        assert tuple(img[100, 150]) == (240, 0, 0) and tuple(img[5, 5]) == (0, 200, 0)


def test_task_queries(http: httpx.Client) -> None:
    a = done(http, "imagine", prompt="query me")
    b = submit(http, "imagine", prompt="me too")["result"]
    r = http.post("/mj/task/list-by-condition", json={"ids": [b, "0000000000000000", a["id"]]})
    assert [t["id"] for t in r.json()] == [b, a["id"]]
    assert http.post("/mj/task/list-by-condition", json={}).json() == []
    seed = http.get(f"/mj/task/{a['id']}/image-seed").json()
    assert seed["code"] == 1 and seed["result"].isdigit()
    assert http.get(f"/mj/task/{a['id']}/image-seed").json() == seed
    gone = http.get("/mj/task/0000000000000000/image-seed")
    assert gone.status_code == 404 and gone.json()["code"] == 3
    r = http.get("/mj/task/0000000000000000/fetch")
    assert r.status_code == 200 and r.content == b""  # what the Java proxy answers for no task


def test_bad_input_answers_like_the_proxy(http: httpx.Client) -> None:
    assert submit(http, "imagine", prompt=" ")["code"] == 4
    assert submit(http, "imagine", prompt="x", base64Array=["data:image/png;base64,!!"])["code"] == 4
    assert submit(http, "blend", base64Array=[data_url()])["code"] == 4
    assert submit(http, "blend", base64Array=[data_url(), data_url()], dimensions="TALL")["code"] == 4
    assert submit(http, "describe")["code"] == 4
    assert submit(http, "shorten", prompt="")["code"] == 4
    assert submit(http, "action", taskId="1")["code"] == 4
    r = http.post(
        "/mj/submit/action", json={"taskId": "0000000000000000", "customId": "MJ::JOB::upsample::1::x"}
    )
    assert r.status_code == 404 and r.json() == {
        "code": 3,
        "description": "关联任务不存在或已失效",
        "result": None,
        "properties": {},
    }
    running = submit(http, "imagine", prompt="not yet")["result"]
    early = submit(http, "action", taskId=running, customId="MJ::JOB::upsample::1::x")
    assert early["code"] == 4
    task, _ = run(http, running)
    wrong = submit(http, "action", taskId=task["id"], customId="MJ::JOB::upsample::1::not-its-hash")
    assert wrong["code"] == 4
    assert submit(http, "modal", taskId=task["id"], prompt="x")["code"] == 4  # not waiting for one
    r = http.post("/mj/submit/imagine", content=b"prompt=cat")
    assert r.status_code == 400 and r.json()["status"] == 400 and r.json()["path"] == "/mj/submit/imagine"


def test_speed_prefixes_and_config_checks(http: httpx.Client) -> None:
    answer = http.post("/mj-fast/mj/submit/imagine", json={"prompt": "fast"}).json()
    assert answer["code"] == 1
    assert http.get(f"/mj-relax/mj/task/{answer['result']}/fetch").json()["id"] == answer["result"]
    assert http.post("/_sim/config", json={"mj_step_seconds": -1}).status_code == 400
    assert http.post("/_sim/config", json={"mj_steps": 0}).status_code == 400
    assert http.post("/_sim/config", json={"mj_step_seconds": STEP}).json()["mj_step_seconds"] == STEP


async def test_image_urls_follow_the_mount_point() -> None:
    """Mounted like the gateway mounts it (`/sim`), even behind a fault prefix, imageUrl points
    under `/sim`."""
    outer = Starlette(routes=[Mount("/sim", app=create_simulator_app(lambda: ["mounted-key"]))])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=outer),
        base_url="http://gw.test",
        headers={"Authorization": "Bearer mounted-key"},
    ) as client:
        r = await client.post("/sim/_sim/config", json={"mj_step_seconds": 0})
        assert r.json()["mj_step_seconds"] == 0
        answer = (await client.post("/sim/f/delay=0/mj/submit/imagine", json={"prompt": "mounted"})).json()
        task = (await client.get(f"/sim/mj/task/{answer['result']}/fetch")).json()
        assert task["status"] == "SUCCESS"
        assert task["imageUrl"].startswith(f"http://gw.test/sim/mj/image/{answer['result']}-")
        assert (await client.get(task["imageUrl"])).headers["content-type"] == "image/png"

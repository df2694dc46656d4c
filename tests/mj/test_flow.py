"""The MJ API end to end, against the built-in simulator channel: every submit ends in SUCCESS
with real output, pictures come from aitre's own media store, buttons name aitre's tasks."""

from __future__ import annotations

import numpy as np

from aitre.simulator.mj_text import KEYCAPS
from tests.mj.kit import Mj
from tests.simulator.mjkit import array_url, data_url, picture, pixels, quadrants
from tests.support.processes import Gateway


def test_imagine_then_upscale_downloads_the_tile_from_aitre(mj: Mj, gw: Gateway) -> None:
    answer = mj.submit("imagine", botType="MID_JOURNEY", prompt="four little houses", state="mine")
    assert answer["code"] == 1 and answer["description"] == "Submit success"
    task_id = answer["result"]
    assert isinstance(task_id, str) and task_id.isdigit() and 16 <= len(task_id) <= 19
    grid_task, seen = mj.run(task_id)
    assert seen[-1] == ("SUCCESS", "100%")
    order = ["NOT_START", "SUBMITTED", "IN_PROGRESS", "SUCCESS"]
    steps = [order.index(status) for status, _ in seen]
    assert steps == sorted(steps), seen  # never backwards
    assert all(p.endswith("%") and 0 <= int(p[:-1]) <= 100 for _, p in seen), seen
    assert grid_task["action"] == "IMAGINE" and grid_task["prompt"] == "four little houses"
    assert grid_task["state"] == "mine" and grid_task["failReason"] is None
    assert grid_task["submitTime"] <= grid_task["startTime"] <= grid_task["finishTime"]
    assert grid_task["imageUrl"].startswith(gw.url + "/media/")
    grid = picture(grid_task["imageUrl"])
    assert grid.size == (1024, 1024)

    labels = [b["label"] or b["emoji"] for b in grid_task["buttons"]]
    assert labels == ["U1", "U2", "U3", "U4", "🔄", "V1", "V2", "V3", "V4"]
    # The upstream's Discord hash is replaced by aitre's task id in every button.
    assert grid_task["buttons"][0]["customId"] == f"MJ::JOB::upsample::1::{task_id}"
    assert "messageHash" not in grid_task["properties"]

    up = mj.pressed(grid_task, "U1")
    assert up["action"] == "UPSCALE" and up["id"] != task_id
    assert up["customId"] == f"MJ::JOB::upsample::1::{task_id}"
    image = picture(up["imageUrl"])
    assert up["imageUrl"].startswith(gw.url + "/media/")
    assert image.size == (512, 512)
    assert np.array_equal(pixels(image), pixels(quadrants(grid)[0]))
    # The upscale's own buttons round-trip too: zoom out from it.
    assert all(up["id"] in b["customId"] for b in up["buttons"] if "::" in b["customId"][4:])
    zoom = mj.pressed(up, "Zoom Out 2x")
    assert zoom["action"] == "ZOOM" and picture(zoom["imageUrl"]).size == (1024, 1024)
    heart = mj.act(up, "❤️")
    assert heart["code"] == 1 and heart["result"] == up["id"]


def test_variation_and_reroll(mj: Mj) -> None:
    grid_task = mj.done("imagine", prompt="a lighthouse")
    vary = mj.pressed(grid_task, "V2")
    assert vary["action"] == "VARIATION" and picture(vary["imageUrl"]).size == (1024, 1024)
    reroll = mj.pressed(grid_task, "🔄")
    assert reroll["action"] == "REROLL"
    assert not np.array_equal(pixels(picture(reroll["imageUrl"])), pixels(picture(grid_task["imageUrl"])))


def test_blend_describe_shorten_and_swap_face(mj: Mj) -> None:
    red, blue = data_url((80, 80), (230, 10, 10, 255)), data_url((60, 90), (10, 10, 230, 255))
    blend = mj.done("blend", base64Array=[red, blue], dimensions="PORTRAIT")
    w, h = picture(blend["imageUrl"]).size
    assert blend["action"] == "BLEND" and abs(h / w - 1.5) < 0.02

    described = mj.done("describe", base64=data_url((300, 200), (20, 160, 40, 255)))
    lines = described["promptEn"].split("\n\n")
    assert [line[: len(KEYCAPS[i])] for i, line in enumerate(lines)] == list(KEYCAPS[:4])
    assert all("green" in line for line in lines)
    assert picture(described["imageUrl"]).size == (300, 200)

    prompt = "a very detailed portrait of an old king, in the style of rembrandt, dramatic light --v 6"
    short = mj.done("shorten", prompt=prompt)
    assert short["action"] == "SHORTEN" and short["imageUrl"] is None
    assert "## Shortened prompts" in short["properties"]["finalPrompt"]
    assert len(short["buttons"]) == 5

    face, target = data_url((40, 40), (240, 0, 0, 255)), data_url((300, 200), (0, 200, 0, 255))
    for path in ("/mj/insight-face/swap", "/mj/submit/swap_face"):
        swapped = mj.done(path, sourceBase64=face, targetBase64=target)
        img = pixels(picture(swapped["imageUrl"]))
        assert swapped["action"] == "SWAP_FACE" and img.shape == (200, 300, 3)
        assert tuple(img[100, 150]) == (240, 0, 0) and tuple(img[5, 5]) == (0, 200, 0)


def test_describe_pick_goes_through_the_modal(mj: Mj) -> None:
    described = mj.done("describe", base64=data_url((300, 200), (20, 160, 40, 255)))
    pick = mj.act(described, "2")
    assert pick["code"] == 21 and pick["properties"]["remix"] is True
    chosen = pick["properties"]["finalPrompt"]
    assert chosen and "green" in chosen
    waiting = mj.fetch(pick["result"])
    assert waiting["status"] == "MODAL" and waiting["action"] == "IMAGINE" and waiting["imageUrl"] is None
    ok = mj.submit("modal", taskId=pick["result"], prompt=chosen)
    assert ok["code"] == 1 and ok["result"] == pick["result"]
    made, _ = mj.run(pick["result"])
    assert made["status"] == "SUCCESS" and made["promptEn"] == chosen
    assert picture(made["imageUrl"]).size == (1248, 832)  # the picked prompt's --ar 3:2


def test_vary_region_and_custom_zoom_through_the_modal(mj: Mj) -> None:
    up = mj.pressed(mj.done("imagine", prompt="a red door"), "U3")
    answer = mj.act(up, "Vary (Region)")
    assert answer["code"] == 21
    task_id = answer["result"]
    assert mj.fetch(task_id)["status"] == "MODAL"
    assert mj.submit("modal", taskId=task_id, prompt="a blue door")["code"] == 4  # no mask
    mask = np.zeros((64, 64, 3), dtype=np.uint8)
    mask[:, :32] = 255  # white: repaint the left half
    ok = mj.submit("modal", taskId=task_id, prompt="a blue door", maskBase64=array_url(mask))
    assert ok["code"] == 1 and ok["result"] == task_id
    task, _ = mj.run(task_id)
    assert task["status"] == "SUCCESS" and task["action"] == "INPAINT"
    before, after = pixels(picture(up["imageUrl"])), pixels(quadrants(picture(task["imageUrl"]))[0])
    assert np.array_equal(before[:, 300:], after[:, 300:]) and not np.array_equal(
        before[:, :200], after[:, :200]
    )
    assert mj.submit("modal", taskId=task_id, prompt="again")["code"] == 4  # no longer waiting

    zoom = mj.act(up, "Custom Zoom")
    assert zoom["code"] == 21
    assert mj.submit("modal", taskId=zoom["result"], prompt="a red door --zoom 1.5")["code"] == 1
    zoomed, _ = mj.run(zoom["result"])
    assert zoomed["status"] == "SUCCESS" and zoomed["action"] == "ZOOM"


def test_queries_list_and_image_seed(mj: Mj) -> None:
    a = mj.done("imagine", prompt="query me")
    b = mj.submit("imagine", prompt="me too")["result"]
    r = mj.http.post("/mj/task/list-by-condition", json={"ids": [b, "1234567890123456", a["id"]]})
    assert r.status_code == 200 and [t["id"] for t in r.json()] == [b, a["id"]]
    assert mj.http.post("/mj/task/list-by-condition", json={}).json() == []
    seed = mj.http.get(f"/mj/task/{a['id']}/image-seed").json()
    assert seed["code"] == 1 and seed["result"].isdigit()
    mine = mj.http.get("/mj/task/list").json()
    assert {a["id"], b} <= {t["id"] for t in mine}
    assert mj.fetch(a["id"]) == a

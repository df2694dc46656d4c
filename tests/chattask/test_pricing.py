"""What a video or a removal by chat costs: the shipped list prices by video model, seconds and size
(an operator's alias included), an operator's price for the name itself, the group multiplier;
reserved at create, settled at success."""

from __future__ import annotations

import httpx

from tests.chattask.kit import LINK, ask, ended_hold, new_user, quota
from tests.support.clients import client
from tests.support.processes import Gateway


def _video(gw: Gateway, key: str, model: str) -> str:
    raw = client(gw, key).chat.completions.with_raw_response.create(model=model, messages=ask("a meadow"))
    assert LINK.search(raw.parse().choices[0].message.content or "")
    return str(raw.headers["x-aitre-task-id"])


def test_an_operator_alias_at_the_pro_price(gw: Gateway) -> None:
    name, key = new_user(gw, "10")
    before = quota(gw, name)
    task_id = _video(gw, key, "sora_video2-pro-landscape")
    units = 15 * 250_000  # 15 s of sora-2-pro at 1792x1024: $0.50/s
    assert ended_hold(gw, task_id) == {"reserve": -units, "settle": 0}
    assert quota(gw, name) == before - units
    row = gw.sql("SELECT request FROM tasks WHERE id = ?", (task_id,))[0]
    assert '"size":"1792x1024"' in row["request"] and '"model":"sora-2-pro"' in row["request"]


def test_the_operators_price_and_the_group_multiplier(gw: Gateway) -> None:
    admin = {"Authorization": f"Bearer {gw.admin_key}"}
    r = httpx.put(
        f"{gw.url}/api/admin/prices/sora_video2-portrait-15s", json={"per_call": "0.3"}, headers=admin
    )
    assert r.status_code == 200, r.text
    name, key = new_user(gw, "10")
    task_id = _video(gw, key, "sora_video2-portrait-15s")
    assert ended_hold(gw, task_id)["reserve"] == -150_000
    # a group at half price pays half of it
    r = httpx.post(f"{gw.url}/api/admin/groups", json={"name": "half", "multiplier": "0.5"}, headers=admin)
    assert r.status_code in (200, 201), r.text
    uid = gw.sql("SELECT id FROM users WHERE username = ?", (name,))[0]["id"]
    r = httpx.patch(f"{gw.url}/api/admin/users/{uid}", json={"group": "half"}, headers=admin)
    assert r.status_code == 200, r.text
    before = quota(gw, name)
    task_id = _video(gw, key, "sora_video2-portrait-15s")
    assert ended_hold(gw, task_id) == {"reserve": -75_000, "settle": 0}
    assert quota(gw, name) == before - 75_000
    # the shared gateway's other tests expect the shipped price again
    assert httpx.delete(f"{gw.url}/api/admin/prices/sora_video2-portrait-15s", headers=admin).status_code in (
        200,
        204,
    )

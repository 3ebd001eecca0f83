"""Publishing the playbook already in force is no new version and no rescore."""

from __future__ import annotations

import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient

from pyrometer.core.playbook import default_playbook, default_playbook_text
from pyrometer.service.runtime import Service
from pyrometer.store.tables import jobs, playbooks
from service.conftest import Keys


def _count(service: Service, table: sa.Table) -> int:
    return service.read(
        lambda conn: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    )


def test_an_identical_playbook_is_not_published_again(
    client: TestClient, keys: Keys, service: Service
) -> None:
    admin = Keys.bearer(keys.admin)
    track = {"userId": "ann", "event": "demo_request", "messageId": "m1"}
    assert client.post("/v1/track", json=track, headers=Keys.bearer(keys.ingest)).status_code == 200

    same = client.post("/v1/playbook", json={"yaml": default_playbook_text()}, headers=admin)
    assert same.status_code == 200, same.text
    assert same.json() == {"version": 1, "changed": False, "job": None}
    # The same content without comments, in another layout and key order: still the same.
    data = default_playbook().to_yaml_dict()
    shuffled = yaml.safe_dump(dict(reversed(list(data.items()))), default_flow_style=True)
    relaid = client.post("/v1/playbook", json={"yaml": shuffled}, headers=admin)
    assert relaid.status_code == 200 and relaid.json()["changed"] is False
    respelled = default_playbook_text().replace("[Order Completed]", "[order-completed]")
    respelled = respelled.replace("event: demo_request", "event: Demo Request")
    assert "order-completed" in respelled and "Demo Request" in respelled
    same = client.post("/v1/playbook", json={"yaml": respelled}, headers=admin)
    assert same.status_code == 200 and same.json()["changed"] is False
    assert _count(service, playbooks) == 1 and _count(service, jobs) == 0

    changed = default_playbook_text().replace("hot: 50", "hot: 45")
    published = client.post("/v1/playbook", json={"yaml": changed}, headers=admin)
    assert published.status_code == 202 and published.json()["version"] == 2
    assert published.json()["changed"] is True and published.json()["job"]["id"]
    again = client.post("/v1/playbook", json={"yaml": changed + "\n# a comment\n"}, headers=admin)
    assert again.status_code == 200 and again.json() == {
        "version": 2,
        "changed": False,
        "job": None,
    }
    assert _count(service, playbooks) == 2 and _count(service, jobs) == 1
    # Going back to the first content is a change again: a new version.
    back = client.post("/v1/playbook", json={"yaml": default_playbook_text()}, headers=admin)
    assert back.status_code == 202 and back.json()["version"] == 3

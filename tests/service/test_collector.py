"""The garbage collector while serving: the heap made before frozen, young collections
less often, and all as it was once the last serving stops; cycles made while serving are
still collected."""

from __future__ import annotations

import gc
import weakref

from fastapi.testclient import TestClient

from pyrometer.api.app import create_app
from pyrometer.service.collector import SERVING_THRESHOLDS, tuned_for_serving
from pyrometer.service.runtime import Service


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_serving_tunes_the_collector_and_the_last_to_stop_restores_it() -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    assert before != SERVING_THRESHOLDS
    made_before = [_Node() for _ in range(10)]
    with tuned_for_serving():
        assert gc.get_threshold() == SERVING_THRESHOLDS
        assert gc.get_freeze_count() >= frozen + len(made_before)
        with tuned_for_serving():  # a second app in the same process
            pass
        assert gc.get_threshold() == SERVING_THRESHOLDS  # the first still serves
        # A cycle made while serving is garbage the collector still finds.
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen


def test_the_app_serves_with_the_collector_tuned(service: Service) -> None:
    before = gc.get_threshold()
    with TestClient(create_app(service, background=False)) as client:
        assert client.get("/health").status_code == 200
        assert gc.get_threshold() == SERVING_THRESHOLDS
    assert gc.get_threshold() == before

"""The per-model promotion lock: one holder at a time, a clear timeout, a dead holder's lease."""

from __future__ import annotations

import re
import threading
import time

import pytest
from mlflow import MlflowClient

from tests.tracking.helpers import embedded_store
from yolo_mlops.tracking import promotion_lock
from yolo_mlops.tracking.promotion_lock import LockSettings, PromotionLockTimeout, held, lock_name

FAST = LockSettings(lease_s=60, timeout_s=5, poll_s=0.05)


@pytest.fixture
def client(tmp_path) -> MlflowClient:
    return MlflowClient(embedded_store(tmp_path))


def test_the_lock_is_a_registered_model_that_exists_only_while_held(client):
    with held(client, "m", "me", FAST):
        lock = client.get_registered_model(lock_name("m"))
        assert lock.tags[promotion_lock.HOLDER_TAG] == "me"
        assert float(lock.tags[promotion_lock.EXPIRES_TAG]) > time.time() + 50
    assert client.search_registered_models() == []


def test_two_holders_never_overlap(client):
    inside, overlaps = [], []

    def work(name: str) -> None:
        for _ in range(3):
            with held(client, "m", name, LockSettings(timeout_s=60, poll_s=0.02)):
                inside.append(name)
                if len(inside) > 1:
                    overlaps.append(list(inside))
                time.sleep(0.05)
                inside.remove(name)

    threads = [threading.Thread(target=work, args=(f"t{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []


def test_a_held_lock_times_out_naming_its_holder(client):
    impatient = LockSettings(lease_s=60, timeout_s=0.3, poll_s=0.05)
    expected = r"'m.promotion-lock' is held by host:1:run-a for more than 0.3 s"
    waiter = held(client, "m", "other", impatient)
    with held(client, "m", "host:1:run-a", FAST), pytest.raises(PromotionLockTimeout) as error:
        waiter.__enter__()
    assert re.search(expected, str(error.value))


def test_an_expired_lease_of_a_dead_holder_is_broken(client):
    client.create_registered_model(
        lock_name("m"),
        tags={promotion_lock.HOLDER_TAG: "dead", promotion_lock.EXPIRES_TAG: str(time.time() - 1)},
    )
    with held(client, "m", "alive", FAST):
        assert client.get_registered_model(lock_name("m")).tags["holder"] == "alive"


def test_release_leaves_a_lock_that_someone_else_now_holds(client):
    with held(client, "m", "me", FAST):
        client.delete_registered_model(lock_name("m"))  # broken by another process
        client.create_registered_model(lock_name("m"), tags={"holder": "them", "expires_at": "0"})
    assert client.get_registered_model(lock_name("m")).tags["holder"] == "them"

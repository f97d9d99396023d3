"""``rota containers`` against a live server."""

from __future__ import annotations

import pytest

from apps.accounts import services as account_services
from apps.containers.models import Container
from tests.client.conftest import Rota
from tests.factories import UserFactory


@pytest.fixture
def carol(platform, jupyter, base_env) -> Rota:
    user = UserFactory(username="carol")
    issued = account_services.token_create(actor=user, name="tests")
    return Rota({**base_env, "ROTA_URL": platform.url, "ROTA_TOKEN": issued.raw})


def test_create_list_open_ssh_stop_delete(carol: Rota, platform):
    created = carol.json(
        "containers",
        "create",
        "lab",
        "-g",
        "jupyter_cpu",
        "--cpu",
        "2",
        "--memory",
        "4",
        "--service",
        "board:6006=python -m http.server 6006",
        "--no-start",
    )
    assert (created["name"], created["status"], created["cpu"]) == ("lab", "stopped", 2)
    assert [s["name"] for s in created["custom_services"]] == ["board"]

    listing = carol("containers", "list")
    assert "lab" in listing.stdout and "stopped" in listing.stdout
    assert "Quota: jupyter_cpu: 1/3 containers, 0/12 CPUs, 0/48 GiB" in listing.stdout + listing.stderr

    started = carol.json("containers", "start", "lab")
    assert started["desired"] == "running"
    assert Container.objects.get(name="lab").status in ("queued", "starting")

    opened = carol("containers", "open", "lab", "--print")
    assert f"{platform.url}/containers/carol/lab/lab" in opened.stdout

    no_ssh = carol("containers", "ssh", "lab", expect=None)
    assert no_ssh.exit_code != 0 and "no SSH port" in no_ssh.stderr

    logs = carol("containers", "logs", "lab", "-s", "nope", expect=None)
    assert logs.exit_code != 0 and "No service" in logs.stderr

    stopped = carol.json("containers", "stop", "lab")
    assert stopped["desired"] == "stopped"
    carol("containers", "delete", "lab", "--yes")
    assert carol.json("containers", "list") == []


def test_quota_exhaustion_is_reported_clearly(carol: Rota):
    for name in ("a", "b", "c"):
        carol("containers", "create", name, "-g", "jupyter_cpu", "--no-start")
    refused = carol("containers", "create", "d", "-g", "jupyter_cpu", "--no-start", expect=None)
    assert refused.exit_code != 0
    assert "Container quota exceeded in jupyter_cpu: containers 3 in use + 1 asked > 3 allowed" in refused.stderr


def test_another_users_container_does_not_exist_for_me(carol: Rota, base_env, platform):
    carol("containers", "create", "mine", "-g", "jupyter_cpu", "--no-start")
    other = UserFactory(username="dave")
    dave = Rota(
        {**base_env, "ROTA_URL": platform.url, "ROTA_TOKEN": account_services.token_create(actor=other, name="t").raw}
    )
    result = dave("containers", "stop", str(Container.objects.get(name="mine").pk), expect=None)
    assert result.exit_code != 0 and "No such container" in result.stderr
    assert Container.objects.get(name="mine").desired == "stopped"

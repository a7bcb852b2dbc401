"""What the Docker executor asks of the engine for health checks, and how it
reads the engine's health events. Pure."""

from __future__ import annotations

import pytest

from pyswarmkit.api.objects import ContainerSpec, HealthConfig, Task, TaskSpec
from pyswarmkit.executor.docker import create_args, has_healthcheck, health_of, healthcheck_arg

pytestmark = pytest.mark.unit


def task(check: HealthConfig) -> Task:
    spec = TaskSpec(container=ContainerSpec(image="busybox", healthcheck=check))
    return Task(id="t1", service_name="web", slot=1, spec=spec)


def test_healthcheck_goes_to_the_container_in_nanoseconds() -> None:
    check = HealthConfig(
        test=("CMD-SHELL", "test -f /tmp/ok"), interval=0.2, timeout=1.5, retries=2, start_period=60
    )
    args, _ = create_args(task(check), "node1")
    assert args["healthcheck"] == {
        "test": ["CMD-SHELL", "test -f /tmp/ok"],
        "interval": 200_000_000,
        "timeout": 1_500_000_000,
        "retries": 2,
        "start_period": 60_000_000_000,
    }


def test_no_healthcheck_disables_the_images_own() -> None:
    assert healthcheck_arg(task(HealthConfig(test=("NONE",)))) == {"test": ["NONE"]}


def test_no_check_given_leaves_the_images_alone() -> None:
    assert "healthcheck" not in create_args(task(HealthConfig()), "node1")[0]
    # Settings without a command tune the image's check.
    assert healthcheck_arg(task(HealthConfig(retries=5))) == {"retries": 5}


def test_has_healthcheck_from_inspect() -> None:
    assert has_healthcheck({"Config": {"Healthcheck": {"Test": ["CMD-SHELL", "true"]}}})
    assert not has_healthcheck({"Config": {"Healthcheck": {"Test": ["NONE"]}}})
    assert not has_healthcheck({"Config": {}})


def test_health_events() -> None:
    assert health_of({"Action": "health_status: healthy"}) == "healthy"
    assert health_of({"Action": "health_status: unhealthy"}) == "unhealthy"
    assert health_of({"status": "health_status: unhealthy"}) == "unhealthy"
    assert health_of({"Action": "die"}) is None
    assert health_of({"Action": "exec_start: sh -c test"}) is None

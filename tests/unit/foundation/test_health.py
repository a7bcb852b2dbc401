"""Health checks' pure core, on a fake clock: Docker's schedule, start period,
retries, recovery and timeouts."""

from __future__ import annotations

import pytest

from pyswarmkit.api.objects import HealthConfig
from pyswarmkit.executor.health import (
    HEALTHY,
    STARTING,
    UNHEALTHY,
    Checks,
    Policy,
    Probe,
    disabled,
    probe_argv,
)

pytestmark = pytest.mark.unit


def probe_now(checks: Checks, now: float) -> Probe:
    """The one probe due at ``now``, begun at once."""
    step = checks.step(now)
    assert len(step.run) == 1, step
    checks.began(step.run[0], now)
    return step.run[0]


def test_defaults_are_dockers() -> None:
    p = Policy.of(HealthConfig(test=("CMD-SHELL", "true")))
    assert (p.interval, p.timeout, p.retries, p.start_period) == (30.0, 30.0, 3, 0.0)
    p = Policy.of(HealthConfig(interval=1, timeout=2, retries=5, start_period=4))
    assert (p.interval, p.timeout, p.retries, p.start_period) == (1, 2, 5, 4)


def test_probe_argv() -> None:
    assert probe_argv(HealthConfig(test=("CMD-SHELL", "test -f /x"))) == [
        "/bin/sh",
        "-c",
        "test -f /x",
    ]
    assert probe_argv(HealthConfig(test=("CMD", "true", "1"))) == ["true", "1"]
    assert probe_argv(HealthConfig(test=("NONE",))) is None
    assert probe_argv(HealthConfig()) is None
    assert disabled(HealthConfig(test=("NONE",)))
    assert not disabled(HealthConfig())


def test_first_probe_one_interval_after_start_then_an_interval_after_each_end() -> None:
    c = Checks()
    c.add("t", Policy(interval=10, timeout=5, retries=3), started=100.0)
    assert c.next_wake() == 110.0
    assert c.step(109.9).run == []
    p = probe_now(c, 110.0)
    assert c.step(112.0).run == []  # one probe at a time
    assert c.result(p, True, 112.0) == ("t", HEALTHY)
    assert c.next_wake() == 122.0
    assert c.step(121.9).run == []
    assert c.step(122.0).run == [Probe("t", 2)]


def test_stays_starting_until_a_probe_passes() -> None:
    c = Checks()
    c.add("t", Policy(interval=1, timeout=5, retries=3), started=0.0)
    assert c.status("t") == STARTING
    p = probe_now(c, 1.0)
    assert c.result(p, False, 1.1) is None
    assert c.status("t") == STARTING
    p = probe_now(c, 2.1)
    assert c.result(p, True, 2.2) == ("t", HEALTHY)


def test_unhealthy_after_retries_consecutive_failures_only() -> None:
    c = Checks()
    c.add("t", Policy(interval=1, timeout=5, retries=3), started=0.0)
    now = 1.0
    outcomes = [False, False, True, False, False]
    for ok in outcomes:
        p = probe_now(c, now)
        c.result(p, ok, now)
        now += 1
    # A pass broke the streak: two failures since, not three.
    assert c.status("t") == HEALTHY
    p = probe_now(c, now)
    assert c.result(p, False, now) == ("t", UNHEALTHY)


def test_failures_in_the_start_period_do_not_count() -> None:
    c = Checks()
    c.add("t", Policy(interval=1, timeout=5, retries=1, start_period=5), started=0.0)
    for now in (1.0, 2.0, 3.0, 4.0):
        p = probe_now(c, now)
        assert c.result(p, False, now) is None
    assert c.status("t") == STARTING
    # A probe that begins once the period is over counts.
    p = probe_now(c, 5.0)
    assert c.result(p, False, 5.0) == ("t", UNHEALTHY)


def test_start_period_only_while_never_healthy() -> None:
    c = Checks()
    c.add("t", Policy(interval=1, timeout=5, retries=1, start_period=100), started=0.0)
    p = probe_now(c, 1.0)
    assert c.result(p, True, 1.0) == ("t", HEALTHY)
    p = probe_now(c, 2.0)
    assert c.result(p, False, 2.0) == ("t", UNHEALTHY)


def test_recovery_from_unhealthy() -> None:
    c = Checks()
    c.add("t", Policy(interval=1, timeout=5, retries=1), started=0.0)
    p = probe_now(c, 1.0)
    assert c.result(p, False, 1.0) == ("t", UNHEALTHY)
    p = probe_now(c, 2.0)
    assert c.result(p, True, 2.0) == ("t", HEALTHY)


def test_a_probe_that_outlives_its_timeout_is_killed_and_fails() -> None:
    c = Checks()
    c.add("t", Policy(interval=1, timeout=3, retries=1), started=0.0)
    p = probe_now(c, 1.0)
    assert c.next_wake() == 4.0
    assert c.step(3.9).kill == []
    step = c.step(4.0)
    assert step.kill == [p]
    assert step.changes == [("t", UNHEALTHY)]
    # Its late result is ignored; the next probe comes an interval later.
    assert c.result(p, True, 4.5) is None
    assert c.status("t") == UNHEALTHY
    assert c.step(5.0).run == [Probe("t", 2)]


def test_timeout_runs_from_when_the_probe_began() -> None:
    c = Checks()
    c.add("t", Policy(interval=1, timeout=3, retries=1), started=0.0)
    step = c.step(1.0)
    # Waiting for a free runner does not count against its timeout.
    assert c.step(10.0).kill == []
    c.began(step.run[0], 10.0)
    assert c.step(12.9).kill == []
    assert c.step(13.0).kill == step.run


def test_removed_task_is_forgotten() -> None:
    c = Checks()
    c.add("t", Policy(interval=1, timeout=3, retries=1), started=0.0)
    p = probe_now(c, 1.0)
    c.remove("t")
    assert c.result(p, False, 1.5) is None
    assert c.next_wake() is None
    assert c.step(100.0).run == []
    assert "t" not in c


def test_a_container_spec_written_before_healthchecks_still_reads() -> None:
    import msgpack
    import msgspec

    from pyswarmkit.api.codec import decode, encode
    from pyswarmkit.api.objects import ContainerSpec

    spec = ContainerSpec(command=("sleep", "1"), healthcheck=HealthConfig(test=("NONE",)))
    fields = msgpack.unpackb(encode(spec), raw=False)
    # Everything before the healthcheck field, as a writer of before it wrote.
    names = [f.name for f in msgspec.structs.fields(ContainerSpec)]
    older = msgpack.packb(fields[: names.index("healthcheck")], use_bin_type=True)
    assert decode(older, ContainerSpec) == ContainerSpec(command=("sleep", "1"))
    assert decode(encode(spec), ContainerSpec) == spec


def test_dropped_probes_are_ignored_and_run_again_an_interval_later() -> None:
    c = Checks()
    c.add("t", Policy(interval=1, timeout=3, retries=1), started=0.0)
    queued = c.step(1.0).run[0]  # handed out, never began: its runner went away
    c.drop_probes(2.0)
    assert c.result(queued, False, 2.5) is None
    assert c.status("t") == STARTING
    assert c.next_wake() == 3.0
    assert c.step(3.0).run == [Probe("t", 2)]

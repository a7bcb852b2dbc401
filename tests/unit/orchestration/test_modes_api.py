"""Modes through the control API and the CLI: what is accepted, what an update
of a job does, and how `service ls` shows each mode."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from pyswarmkit import display
from pyswarmkit.api.codec import decode, encode
from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.api.objects import Service, ServiceMode, Task, TaskStatus, replace
from pyswarmkit.api.states import TaskState
from pyswarmkit.cli import _edit_mode, _mode
from pyswarmkit.control.handlers import Handlers, Reply, Write, task_counts
from pyswarmkit.store import MemoryStore
from tests.unit.orchestration.world import spec

pytestmark = pytest.mark.unit


def call(store: MemoryStore, method: str, body: dict[str, Any]) -> Any:
    outcome = Handlers().handle(store, method, body)
    if isinstance(outcome, Reply):
        return outcome.value
    assert isinstance(outcome, Write)
    batch = store.apply(outcome.build(store), store.index + 1, 1.0)
    return outcome.result(batch)


def created(store: MemoryStore, s: Any) -> Service:
    sid = call(store, "service.create", {"spec": s})["id"]
    found = store.get_service(sid)
    assert found is not None
    return found


def test_every_mode_is_accepted_and_a_mode_never_changes() -> None:
    store = MemoryStore()
    for kind in ("replicated", "global", "replicated-job", "global-job"):
        created(store, spec(f"s-{kind}", kind, total=2))  # type: ignore[arg-type]
    svc = store.service_by_name("s-global")
    assert svc is not None
    other = replace(svc.spec, mode=ServiceMode(kind="replicated"))
    with pytest.raises(InvalidArgument, match="service mode change is not allowed"):
        call(store, "service.update", {"ref": svc.id, "version": svc.meta.version, "spec": other})


def test_every_update_of_a_job_starts_its_next_iteration_and_no_other_service_has_one() -> None:
    store = MemoryStore()
    job = created(store, spec("batch", "replicated-job", total=4, concurrent=2))
    web = created(store, spec("web", replicas=2))
    for svc, mode in (
        (job, replace(job.spec.mode, max_concurrent=3)),
        (web, ServiceMode(replicas=3)),
    ):
        new = replace(svc.spec, mode=mode)
        call(store, "service.update", {"ref": svc.id, "version": svc.meta.version, "spec": new})
    assert store.get_service(job.id).job_iteration == 1  # type: ignore[union-attr]
    assert store.get_service(web.id).job_iteration == 0  # type: ignore[union-attr]


def task(sid: str, state: TaskState, desired: TaskState, iteration: int = 0) -> Task:
    return Task(
        id=f"t{state}{desired}{iteration}",
        service_id=sid,
        desired_state=desired,
        status=TaskStatus(state=state),
        job_iteration=iteration,
    )


def test_counts_and_the_replicas_column_per_mode() -> None:
    job = Service(id="j", spec=spec("batch", "replicated-job", total=10, concurrent=3))
    job = replace(job, job_iteration=1)
    tasks = [
        task("j", TaskState.RUNNING, TaskState.RUNNING, 1),
        task("j", TaskState.COMPLETE, TaskState.COMPLETE, 1),
        task("j", TaskState.COMPLETE, TaskState.COMPLETE, 0),  # an earlier run
    ]
    counts = task_counts(job, tasks)
    assert counts == (3, 1, 10)
    assert display.replicas(job, 1, counts) == "1/3 (1/10 completed)"
    assert display.mode(job) == "replicated job"
    glob = Service(id="g", spec=spec("agent", "global"))
    gtasks = [
        task("g", TaskState.RUNNING, TaskState.RUNNING),
        task("g", TaskState.PENDING, TaskState.RUNNING),
        task("g", TaskState.FAILED, TaskState.SHUTDOWN),
    ]
    assert display.replicas(glob, 1, task_counts(glob, gtasks)) == "1/2"
    gjob = Service(id="h", spec=spec("once", "global-job"))
    htasks = [
        task("h", TaskState.COMPLETE, TaskState.COMPLETE),
        task("h", TaskState.RUNNING, TaskState.RUNNING),
    ]
    assert display.replicas(gjob, 1, task_counts(gjob, htasks)) == "1/1 (1/2 completed)"
    web = Service(id="w", spec=spec("web", replicas=3))
    assert display.replicas(web, 2) == "2/3" and display.mode(web) == "replicated"


def test_the_cli_checks_modes_as_docker_does() -> None:
    assert _mode("replicated-job", 10, None) == ServiceMode(
        kind="replicated-job", total_completions=10, max_concurrent=10
    )
    assert _mode("replicated-job", None, 3).total_completions == 1
    assert _mode("global", None, None).kind == "global"
    with pytest.raises(InvalidArgument, match="--replicas can only be used with replicated"):
        _mode("global", 2, None)
    with pytest.raises(InvalidArgument, match="--max-concurrent can only be used"):
        _mode("replicated", None, 2)
    with pytest.raises(InvalidArgument, match="invalid --mode 'jobs'"):
        _mode("jobs", None, None)
    job = _mode("replicated-job", 10, 3)
    assert _edit_mode(job, 20, None).total_completions == 20
    assert _edit_mode(job, None, 5).max_concurrent == 5
    with pytest.raises(InvalidArgument, match="--replicas can only be used"):
        _edit_mode(ServiceMode(kind="global-job"), 2, None)


def test_objects_written_before_the_job_fields_still_read() -> None:
    """A state dir or Raft log of before: ServiceMode without max_concurrent and
    total_completions, Service and Task without job_iteration."""
    svc = Service(id="s", spec=spec("web", replicas=3))
    fields = msgpack.unpackb(encode(svc), raw=False)
    mode = fields[1][2]
    assert mode == ["replicated", 3, 0, 0]
    fields[1][2] = mode[:2]
    old = msgpack.packb(fields[:-1], use_bin_type=True)
    assert decode(old, Service) == svc
    t = Task(id="t", slot=2)
    old_task = msgpack.packb(msgpack.unpackb(encode(t), raw=False)[:-1], use_bin_type=True)
    assert decode(old_task, Task) == t

"""The chaos harness's pure parts: the seeded plan, the injected wire faults
and the invariants it checks."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from pyswarmkit.chaos.checks import Expect, check_all, check_processes
from pyswarmkit.chaos.plan import FAULTS, plan
from pyswarmkit.faults import Faults, FaultSpec, parse

pytestmark = pytest.mark.unit


def test_a_seed_is_the_same_plan_and_another_seed_another() -> None:
    assert plan(7, 120) == plan(7, 120)
    assert plan(7, 120).steps != plan(8, 120).steps


def test_at_most_one_manager_is_under_a_fault_at_a_time() -> None:
    for seed in range(50):
        p = plan(seed, 300)
        spans = sorted(
            (s.at, s.at + s.length) for s in p.steps if s.op in FAULTS and s.target in p.managers
        )
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"seed {seed}: overlapping manager faults"


def test_the_plan_only_touches_services_it_created_and_kept() -> None:
    p = plan(3, 600)
    live: set[str] = set()
    for s in p.steps:
        if s.op == "create":
            live.add(s.target)
        elif s.op in ("update", "scale", "remove"):
            assert s.target in live
            if s.op == "remove":
                live.discard(s.target)


def test_fault_spec_parses_and_refuses_in_one_line() -> None:
    spec = parse("seed=3,drop=0.1,dup=0.05,delay=0.2,delay_max=1,file=/x")
    assert spec == FaultSpec(3, 0.1, 0.05, 0.2, 1.0, "/x")
    for bad, says in (("drop=2", "out of range"), ("nope=1", "unknown key"), ("drop", "key=value")):
        with pytest.raises(ValueError, match=says):
            parse(bad)


def test_faults_drop_duplicate_and_hold_back_as_seeded() -> None:
    f = Faults(FaultSpec(seed=1, drop=0.2, dup=0.2, delay=0.2, delay_max=1.0))
    sent: list[int] = []
    for i in range(1000):
        sent += f.outgoing(i, 0.0)
    sent += f.due(1.0)
    assert 150 < f.dropped < 250 and 150 < f.duplicated < 250 and 150 < f.delayed < 250
    assert len(sent) == 1000 - f.dropped + f.duplicated
    assert not f.holding
    f.calm = True
    assert [f.outgoing(x, 2.0) for x in range(100)] == [[x] for x in range(100)]
    f.isolated = True
    assert f.outgoing(1, 3.0) == [] and not f.incoming()


def _view(**over: Any) -> dict[str, list[dict[str, Any]]]:
    svc = {
        "id": "s1",
        "meta": {"version": 3},
        "spec": {
            "annotations": {"name": "web"},
            "mode": {"kind": "replicated", "replicas": 2},
            "task": {"container": {"env": ["GEN=5"]}},
        },
    }
    node = {"id": "n1", "status": {"state": "ready"}, "spec": {"availability": "active"},
            "role": "worker"}  # fmt: skip

    def task(tid: str, slot: int, pid: int) -> dict[str, Any]:
        return {
            "id": tid, "service_id": "s1", "slot": slot, "node_id": "n1",
            "desired_state": "running",
            "status": {"state": "running", "container": {"pid": pid}},
        }  # fmt: skip

    view = {"services": [svc], "nodes": [node], "tasks": [task("t1", 1, 11), task("t2", 2, 12)]}
    view.update(over)
    return view


def test_a_settled_swarm_passes() -> None:
    views = {"m1": _view(), "m2": _view()}
    assert check_all(views, {"web": Expect(True, 2, "5")}, {11, 12}) == []


def test_each_violation_is_named() -> None:
    v = _view()
    assert check_all({"m1": v}, {"web": Expect(True, 3, "6"), "db": Expect(True)}, {11, 12}) == [
        "service db: its acknowledged create is lost",
        "service web: 2 replicas, acknowledged 3",
        "service web: GEN=5, acknowledged GEN=6",
    ]
    assert check_processes(v, {11, 13}) == [
        "process 13 runs, but no running task in the store is it",
        "task t2 is running in the store, but its process 12 is not",
    ]
    doubled = _view()
    doubled["tasks"][1]["slot"] = 1
    out = check_all({"m1": doubled, "m2": _view()}, {}, {11, 12})
    assert "manager m2's tasks differ from m1's" in out
    assert "service web: slots [1] run more than one task" in out
    # After a scale down the slots kept need not be the lowest numbers.
    gap = _view()
    gap["tasks"][1]["slot"] = 7
    assert not [line for line in check_all({"m1": gap}, {}, {11, 12}) if "slot" in line]
    drained = _view()
    drained["nodes"][0]["spec"]["availability"] = "drain"
    assert "task t1 runs on node n1, which is drained" in check_all({"m": drained}, {}, {11, 12})


def test_every_kind_of_fault_in_a_plan_is_carried_out(tmp_path: Any) -> None:
    """Each fault kind a plan holds reaches the code that injects it; a
    kind the runner passed over would leave a sweep claiming faults it never
    ran (clock jumps once did)."""
    import io

    from pyswarmkit.chaos.plan import Step
    from pyswarmkit.chaos.runner import Run

    p = plan(1, 30.0)
    run = Run(p, tmp_path, io.StringIO())
    injected: list[str] = []
    run.fault = lambda s: injected.append(s.op)  # type: ignore[method-assign]
    run.ctl = lambda *a, **k: pytest.fail(f"a fault ran as workload: {a}")  # type: ignore[method-assign]
    for op in FAULTS:
        run.step(Step(1.0, op, "m1", 2.0, "3600" if op == "clock" else ""))
    assert injected == list(FAULTS)


def test_a_manager_fault_waits_for_the_last_one_to_heal(tmp_path: Any) -> None:
    """A fault that started late heals late; the next manager fault, due by
    the plan, must still wait for that heal: a quorum always remains."""
    import io
    import time

    from pyswarmkit.chaos.plan import Plan, Step
    from pyswarmkit.chaos.runner import Run

    steps = (
        Step(0.0, "create", "c1", value="1"),
        Step(0.05, "disk", "m1", 0.4),
        Step(0.1, "isolate", "m2", 0.1),
        Step(0.15, "kill", "w1", 0.1),
    )
    run = Run(Plan(1, 1.0, ("m1", "m2", "m3"), ("w1",), steps), tmp_path, io.StringIO())
    events: list[tuple[str, str]] = []
    busy: list[set[str]] = []

    def fault(s: Step) -> None:
        run.members[s.target].fault = s.op
        run.heals.append((time.monotonic() + s.length, s.target))
        events.append(("fault", s.target))
        busy.append({n for n in ("m1", "m2", "m3") if run.members[n].fault})

    def heal(name: str) -> None:
        run.members[name].fault = ""
        events.append(("heal", name))

    def slow_step(s: Step) -> None:
        # The create is slow (a command waiting out an election): every later
        # step is due by the time it returns.
        if s.op in FAULTS:
            fault(s)
        else:
            time.sleep(0.3)

    run.up = lambda: None  # type: ignore[method-assign]
    run.settled = lambda: []  # type: ignore[method-assign]
    run.fault = fault  # type: ignore[method-assign]
    run.heal = heal  # type: ignore[method-assign]
    run.step = slow_step  # type: ignore[method-assign]
    assert run.run() == []
    assert all(len(b) <= 1 for b in busy), busy
    assert events.index(("heal", "m1")) < events.index(("fault", "m2"))
    # The steps keep their order.
    assert [e for e in events if e[0] == "fault"] == [
        ("fault", "m1"),
        ("fault", "m2"),
        ("fault", "w1"),
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--seeds", "0"], "--seeds must be 1 or more"),
        (["--seeds", "-3"], "--seeds must be 1 or more"),
        (["--seed", "-1"], "--seed must be 0 or more"),
        (["--duration", "0s"], "must be more than 0s"),
        (["--duration", "abc"], "invalid --duration 'abc'"),
    ],
)
def test_bad_chaos_arguments_are_one_line_and_start_nothing(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from pyswarmkit.chaos.__main__ import main

    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err

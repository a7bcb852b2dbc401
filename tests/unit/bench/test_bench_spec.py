"""Reading a `swarmd bench` file: what it launches, what it runs, and one
clear line for each thing that is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyswarmkit.api.errors import InvalidArgument
from pyswarmkit.bench.agents import decode_agents, encode_agents
from pyswarmkit.bench.spec import parse

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

GOOD = """
managers = 1
heartbeat_period = "2s"
election_tick = 50

[agents]
count = 7
hosts = 2
cpus = 2.5
memory = "1G"
labels = { zone = ["a", "b"], rack = "r1" }
engine_labels = { disk = ["ssd", "hdd", "hdd"] }

[[service]]
name = "web"
replicas = 30
constraints = ["node.labels.zone==a"]
placement_prefs = ["spread=node.labels.rack"]
reserve_cpu = 0.5
reserve_memory = "64M"
limit_memory = "128M"
replicas_max_per_node = 3

[[service]]
name = "idle"
replicas = 0
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return path


def test_a_valid_file_gives_agents_and_services(tmp_path: Path) -> None:
    spec = parse(write(tmp_path, GOOD))
    assert (spec.managers, spec.heartbeat_period, spec.election_tick) == (1, 2.0, 50)
    a = spec.agents
    assert (a.count, a.hosts, a.nano_cpus, a.memory_bytes) == (7, 2, 2_500_000_000, 2**30)
    assert [a.hostname(i) for i in (0, 6)] == ["bench-0001", "bench-0007"]
    assert [a.labels_of(i) for i in (0, 1, 2)] == [
        {"zone": "a", "rack": "r1"},
        {"zone": "b", "rack": "r1"},
        {"zone": "a", "rack": "r1"},
    ]
    assert [a.engine_labels_of(i)["disk"] for i in range(4)] == ["ssd", "hdd", "hdd", "ssd"]
    assert [list(r) for r in a.slices()] == [[0, 1, 2, 3], [4, 5, 6]]
    web, idle = spec.services
    assert web.annotations.name == "web" and web.mode.replicas == 30
    assert web.task.placement.constraints == ("node.labels.zone==a",)
    assert web.task.placement.preferences == ("spread=node.labels.rack",)
    assert web.task.placement.max_replicas == 3
    assert web.task.resources.reservations.nano_cpus == 500_000_000
    assert web.task.resources.reservations.memory_bytes == 64 * 2**20
    assert web.task.resources.limits.memory_bytes == 128 * 2**20
    assert idle.mode.replicas == 0
    # The host processes get the agents table as JSON, and read it back whole.
    assert decode_agents(encode_agents(a)) == a


@pytest.mark.parametrize("managers", [1, 3, 7])
def test_managers_from_one_to_seven(tmp_path: Path, managers: int) -> None:
    text = f'managers = {managers}\n[agents]\ncount = 1\n[[service]]\nname = "w"\n'
    assert parse(write(tmp_path, text)).managers == managers


def test_managers_and_election_tick_default_to_swarmds(tmp_path: Path) -> None:
    spec = parse(write(tmp_path, '[agents]\ncount = 1\n[[service]]\nname = "w"\n'))
    assert (spec.managers, spec.election_tick) == (1, 10)


def test_hosts_default_to_one_per_250_agents(tmp_path: Path) -> None:
    spec = parse(write(tmp_path, '[agents]\ncount = 1000\n[[service]]\nname = "w"\n'))
    assert spec.agents.hosts == 4
    assert sum(len(r) for r in spec.agents.slices()) == 1000


@pytest.mark.parametrize("name", ["bench-100.toml", "bench-1k.toml"])
def test_the_examples_parse(name: str) -> None:
    spec = parse(EXAMPLES / name)
    assert spec.agents.count in (100, 1000)
    assert sum(s.mode.replicas for s in spec.services) in (1100, 10_000)


def test_the_scale_run_is_three_managers_5000_agents_50000_tasks() -> None:
    spec = parse(EXAMPLES / "bench-5k.toml")
    assert (spec.managers, spec.agents.count, spec.agents.hosts) == (3, 5000, 20)
    assert sum(s.mode.replicas for s in spec.services) == 50_000
    assert (spec.heartbeat_period, spec.election_tick) == (20.0, 100)
    # Room for every task: 20 per agent by CPU.
    (web,) = spec.services
    per_agent = spec.agents.nano_cpus // web.task.resources.reservations.nano_cpus
    assert per_agent * spec.agents.count >= 50_000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[agents\ncount = 1", "is not valid TOML"),
        ('surprise = 1\n[agents]\ncount = 1\n[[service]]\nname = "w"', "unknown key 'surprise'"),
        (
            '[agents]\ncount = 1\ncolour = "red"\n[[service]]\nname = "w"',
            "agents: unknown key 'colour'",
        ),
        (
            '[agents]\ncount = 1\n[[service]]\nname = "w"\nreplica = 3',
            "service 1: unknown key 'replica'",
        ),
        ('[agents]\ncount = 0\n[[service]]\nname = "w"', "agents: count must be between 1 and"),
        (
            '[agents]\ncount = "many"\n[[service]]\nname = "w"',
            "agents: count must be a whole number",
        ),
        ('[[service]]\nname = "w"', "an [agents] table is needed"),
        ("[agents]\ncount = 1\n", "no [[service]]"),
        (
            '[agents]\ncount = 1\n[[service]]\nname = "w"\nreplicas = -1',
            "replicas must be 0 or more",
        ),
        (
            '[agents]\ncount = 1\n[[service]]\nname = "w"\nconstraints = ["zone is a"]',
            "service 1: ",
        ),
        (
            '[agents]\ncount = 1\n[[service]]\nname = "w"\nplacement_prefs = ["pack=x"]',
            "service 1: ",
        ),
        (
            'managers = 0\n[agents]\ncount = 1\n[[service]]\nname = "w"',
            "managers must be between 1 and 7, not 0",
        ),
        (
            'managers = 8\n[agents]\ncount = 1\n[[service]]\nname = "w"',
            "managers must be between 1 and 7, not 8",
        ),
        (
            'election_tick = 1\n[agents]\ncount = 1\n[[service]]\nname = "w"',
            "election_tick must be between 2 and 10000, not 1",
        ),
        (
            'managers = "3"\n[agents]\ncount = 1\n[[service]]\nname = "w"',
            "managers must be a whole number",
        ),
        ('[agents]\ncount = 2\nhosts = 3\n[[service]]\nname = "w"', "more than the 2 agents"),
        ('[agents]\ncount = 1\nlabels = ["a"]\n[[service]]\nname = "w"', "labels must be a table"),
        ('[agents]\ncount = 1\n[[service]]\nname = "w"\n[[service]]\nname = "w"', "comes twice"),
        ('[agents]\ncount = 1\n[[service]]\nname = "w"\nreserve_cpu = "lots"', "reserve_cpu"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse(write(tmp_path, text))
    line = str(caught.value)
    assert message in line and "\n" not in line
    assert str(tmp_path / "bench.toml") in line


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"bench file .*nope.toml does not exist"):
        parse(tmp_path / "nope.toml")

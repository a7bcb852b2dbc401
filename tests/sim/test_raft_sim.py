"""The Raft fault simulator over many seeds, and the simulator's own contract."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pyswarmkit.raft import sim
from pyswarmkit.raft.core import RaftNode

pytestmark = pytest.mark.sim

CI_SEEDS = 500


def failures(seeds: range, long_run: bool = False) -> list[str]:
    out = []
    for seed in seeds:
        result = sim.run_seed(seed, long_run=long_run)
        if result.violation:
            out.append(
                f"seed {seed}: {result.violation}\n  {sim.replay_command(seed, None, long_run)}"
            )
    return out


def test_ci_seeds_hold_every_invariant() -> None:
    bad = failures(range(CI_SEEDS))
    assert not bad, "\n".join(bad)


def test_a_seed_replays_exactly() -> None:
    a = sim.run_seed(4242)
    b = sim.run_seed(4242)
    assert a == b
    assert a.stats["steps"] > 1000 and a.stats["acked"] > 0


def _commit_by_counting_any_term(self: RaftNode) -> bool:
    """Raft §5.4.2 broken on purpose: commits old-term entries by counting."""
    prs = self._prs
    matches = sorted((prs[v].match if v in prs else 0 for v in self.voters), reverse=True)
    index = matches[len(matches) // 2]
    return index > self.log.committed and self.log.commit_to(index)


def test_a_broken_commit_rule_is_caught_within_the_ci_seeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(RaftNode, "_maybe_commit", _commit_by_counting_any_term)
    for seed in range(CI_SEEDS):
        result = sim.run_seed(seed)
        if result.violation:
            assert "leader completeness" in result.violation or "safety" in result.violation
            return
    pytest.fail(f"no seed below {CI_SEEDS} caught commits of old-term entries by counting")


def test_cli_summary_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert sim.main(["--seeds", "3", "--start", "7"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("seeds: 3  violations: 0")


def test_cli_prints_the_replay_command_of_a_failing_seed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(RaftNode, "_maybe_commit", _commit_by_counting_any_term)
    seed = next(s for s in range(CI_SEEDS) if sim.run_seed(s).violation)
    assert sim.main(["--seeds", "2", "--start", str(seed)]) == 1
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.startswith(f"seed {seed} ")]
    assert line.endswith(
        f"replay: python -m pyswarmkit.raft.sim --seeds 1 --start {seed} --verbose"
    )
    assert "violations: 1" in out or "violations: 2" in out


def test_runs_as_a_module() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pyswarmkit.raft.sim", "--seeds", "2", "--nodes", "5"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "seeds: 2  violations: 0" in proc.stdout


@pytest.mark.slow
def test_long_sweep() -> None:
    bad = failures(range(CI_SEEDS, CI_SEEDS + 3000))
    bad += failures(range(100_000, 100_200), long_run=True)
    assert not bad, "\n".join(bad)

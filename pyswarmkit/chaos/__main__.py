"""python -m pyswarmkit.chaos --seed S --duration 120s [--seeds N]: run the
seeded chaos plan (or N seeds from S) against a real swarm and check that
every invariant holds once it settles. Exit status 1 if any seed fails; a
failing seed prints the command that replays it. Workload lines end "ok" or
"not acknowledged" (a command that failed under the faults: its outcome is
left open, which the checks allow)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any

from pyswarmkit.chaos.plan import FAULTS, plan
from pyswarmkit.chaos.runner import run_seed
from pyswarmkit.control.units import parse_duration


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyswarmkit.chaos", description=__doc__)
    ap.add_argument("--seed", type=int, default=1, help="the first seed (default 1)")
    ap.add_argument("--seeds", type=int, default=1, help="how many seeds from --seed")
    ap.add_argument("--duration", default="60s", help="faults and workload per seed (60s)")
    ap.add_argument("--settle", default="120s", help="time allowed to settle after (120s)")
    ap.add_argument("--keep", action="store_true", help="keep state dirs and logs of passes too")
    args = ap.parse_args(argv)
    try:
        duration = parse_duration(args.duration, "--duration")
        settle = parse_duration(args.settle, "--settle")
        if args.seed < 0:
            raise ValueError(f"--seed must be 0 or more, not {args.seed}")
        if args.seeds < 1:
            raise ValueError(f"--seeds must be 1 or more, not {args.seeds}")
        if duration <= 0 or settle <= 0:
            raise ValueError("--duration and --settle must be more than 0s")
    except Exception as exc:
        print(f"chaos: error: {exc}", file=sys.stderr)
        return 2
    def stop(signum: int, frame: Any) -> None:
        # As Ctrl-C: the seed's run stops every process it started on its way out.
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    failed: list[int] = []
    began = time.monotonic()
    for seed in range(args.seed, args.seed + args.seeds):
        p = plan(seed, duration)
        faults = sum(s.op in FAULTS for s in p.steps)
        print(f"seed {seed}: {len(p.steps)} steps, {faults} faults, {duration:g}s", flush=True)
        try:
            problems, root = run_seed(p, sys.stdout, settle, args.keep)
        except KeyboardInterrupt:
            print(f"seed {seed}: interrupted; every process it started is stopped")
            return 130
        if problems:
            failed.append(seed)
            print(f"seed {seed}: FAILED ({len(problems)} violations); logs in {root}")
            for line in problems[:20]:
                print(f"  - {line}")
            print(
                f"  replay: python -m pyswarmkit.chaos --seed {seed} --duration {args.duration}"
                f" --settle {args.settle}"
            )
        else:
            print(f"seed {seed}: ok")
    took = time.monotonic() - began
    print(f"{args.seeds} seed(s) in {took:.0f}s: {args.seeds - len(failed)} ok, failed {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

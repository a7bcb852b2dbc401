"""``python -m tests.fuzz --count 100000 --seed 1``: every surface, a table of
inputs, typed errors, accepted inputs, crashes and seconds; a crash prints its
seed, index and bytes. ``--replay INDEX`` runs one input again."""

from __future__ import annotations

import argparse
import logging
import sys

from tests.fuzz.corpus import RECORDED, record_control
from tests.fuzz.runner import HEADER, replay, run

SURFACES = ("wire", "control", "raft", "topology", "compose")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    p.add_argument("--count", type=int, default=10_000, help="inputs per surface")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--surface", action="append", choices=SURFACES, help="default: all")
    p.add_argument("--replay", type=int, metavar="INDEX", help="run input INDEX only")
    p.add_argument("--record", action="store_true", help="record swarmctl's requests again")
    p.add_argument("--reasons", action="store_true", help="show the commonest refusals")
    args = p.parse_args(argv)
    # The code under test logs what it refuses; a run is about the counts.
    logging.disable(logging.CRITICAL)
    names = args.surface or list(SURFACES)
    if args.record:
        print(f"recorded {record_control()} control requests in {RECORDED}")
        return 0
    if args.replay is not None:
        failed = 0
        for name in names:
            outcome, exc, data = replay(name, args.seed, args.replay)
            print(f"{name} input {args.replay} ({len(data)} bytes): {outcome}: {exc!r}")
            print(f"  hex: {data.hex()}")
            failed += outcome == "crash"
        return 1 if failed else 0
    print(f"seed {args.seed}, {args.count} inputs per surface")
    print(HEADER)
    crashes = 0
    for name in names:
        result = run(name, args.count, args.seed, watchdog=True)
        print(result.line(), flush=True)
        if args.reasons:
            for why, n in sorted(result.reasons.items(), key=lambda kv: -kv[1])[:8]:
                print(f"    {n:>7}  {why}")
        for crash in result.crashes:
            print(crash.report(), file=sys.stderr)
        crashes += len(result.crashes)
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())

"""What ``swarmd bench`` runs once its arguments are checked."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import IO

from pyswarmkit.bench.report import table
from pyswarmkit.bench.run import Bench
from pyswarmkit.bench.spec import BenchSpec, parse

__all__ = ["parse", "run"]


def run(spec: BenchSpec, out: IO[str], *, as_json: bool, timeout: float, log_level: str) -> None:
    """Run a parsed bench in a fresh directory (removed afterwards) and print
    its report: a table, or one JSON object."""
    workdir = Path(tempfile.mkdtemp(prefix="swarmd-bench-"))
    try:
        report = Bench(spec, workdir, timeout=timeout, log_level=log_level).run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if as_json:
        out.write(json.dumps(report) + "\n")
    else:
        out.write(table(report) + "\n")
    out.flush()

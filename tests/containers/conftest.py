"""The Docker executor's tests run against a real engine: the one DOCKER_HOST
names (scripts/docker-engine.sh start prints it; .ci/run exports it). Without
a reachable engine and its test images every test here is skipped, saying why."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker_helpers import (
    DockerSwarmd,
    engine_or_reason,
    remove_containers_of,
    start_swarmd,
    stop_swarmd,
)


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    client, reason = engine_or_reason()
    if client is None:
        pytest.skip(reason)
    yield client
    client.close()  # type: ignore[attr-defined]


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="swk-d-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def dswarmd(engine: Any, short_tmp: Path) -> Iterator[DockerSwarmd]:
    node = start_swarmd(short_tmp, os.environ["DOCKER_HOST"])
    try:
        yield node
    finally:
        stop_swarmd(node)
        # Whatever a failed test left on the shared engine goes with it.
        remove_containers_of(engine, node)

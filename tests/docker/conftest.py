"""The Docker executor's tests run against a real engine: the one DOCKER_HOST
names (scripts/docker-engine.sh start prints it; .ci/run exports it). Without
a reachable engine and its test images every test here is skipped, saying why."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

IMAGES = ("busybox:latest", "redis:3.0.5", "redis:3.0.6", "redis:3.0.7")
HOW = "start one with scripts/docker-engine.sh start and export the DOCKER_HOST it prints"


def _engine_or_reason() -> tuple[object | None, str]:
    host = os.environ.get("DOCKER_HOST", "")
    if not host:
        return None, f"no Docker engine (DOCKER_HOST is not set): {HOW}"
    try:
        import docker
        from docker.errors import DockerException, ImageNotFound

        client = docker.DockerClient(base_url=host, timeout=30)
        client.ping()
    except Exception as exc:
        return None, f"no Docker engine at {host} ({type(exc).__name__}: {exc}): {HOW}"
    try:
        for image in IMAGES:
            client.images.get(image)
    except (ImageNotFound, DockerException):
        client.close()
        return None, f"the engine at {host} lacks the test images: {HOW}"
    return client, ""


@pytest.fixture(scope="session")
def engine() -> Iterator[object]:
    client, reason = _engine_or_reason()
    if client is None:
        pytest.skip(reason)
    yield client
    client.close()  # type: ignore[attr-defined]

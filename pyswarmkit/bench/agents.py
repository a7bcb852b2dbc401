"""An agent host: one OS process running many worker agents for ``swarmd bench``.

    SWARM_JOIN_TOKEN=... python -m pyswarmkit.bench.agents \\
        --join-addr 127.0.0.1:4242 --host 1 --agents '<json>' --first 0 --count 250

Each agent joins the swarm as a real worker does: a CurveZMQ keypair of its
own, a ``JoinRequest`` with the worker token and its node description, a
certificate from the swarm's CA for its key, checked against the root. Then
it keeps a CurveZMQ connection of its own to the manager (one ``ZmqBus``
holds them all, each under its node's keys) and runs the real agent core
with sim controllers (``bench/host.py``). Joins go out many at a time.

The process stops on SIGTERM or SIGINT, and when its parent goes away.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import logging
import os
import signal
import sys
import threading
from dataclasses import asdict, dataclass
from typing import Any

from pyswarmkit import clock
from pyswarmkit.actors.registry import Registry
from pyswarmkit.api.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    SwarmError,
    Unavailable,
)
from pyswarmkit.api.objects import NodeDescription
from pyswarmkit.api.protocol import Body, JoinAccepted, JoinRequest
from pyswarmkit.bench.host import AddAgent, AgentHost
from pyswarmkit.bench.spec import AgentSpec
from pyswarmkit.ca import certs
from pyswarmkit.ca.tokens import parse_token
from pyswarmkit.executor.sim import SimExecutor
from pyswarmkit.ticker import Ticker
from pyswarmkit.transport.bus import Envelope, anonymous_id
from pyswarmkit.transport.zmq_bus import CurveKeys, ZmqBus

log = logging.getLogger("bench.agents")

# Joins in flight at once per host; each waits this long for its answer.
JOIN_WINDOW = 32
JOIN_TIMEOUT = 10.0
JOIN_ATTEMPTS = 6
TICK_INTERVAL = 0.1


def encode_agents(spec: AgentSpec) -> str:
    return json.dumps(asdict(spec))


def decode_agents(text: str) -> AgentSpec:
    data = json.loads(text)
    data["labels"] = {k: tuple(v) for k, v in data["labels"].items()}
    data["engine_labels"] = {k: tuple(v) for k, v in data["engine_labels"].items()}
    return AgentSpec(**data)


@dataclass(slots=True)
class Joiner:
    index: int
    keys: CurveKeys
    description: NodeDescription
    attempts: int = 0

    @property
    def pending_id(self) -> str:
        # What the manager calls a joiner: its key. The connection is kept under it.
        return anonymous_id(self.keys.public)


class JoinFailed(SwarmError):
    code = "permission_denied"


class AgentHostProcess:
    def __init__(self, addr: str, token: str, spec: AgentSpec, indexes: range, host: int) -> None:
        self.addr = addr
        self.token = token
        self.pinned = parse_token(token).server_key
        self.spec = spec
        self.indexes = indexes
        self.host_id = f"agent-host-{host}"
        self.stop = threading.Event()
        self.bus = ZmqBus(self.host_id, CurveKeys.generate())
        self.registry = Registry(self.host_id)
        self.ref: Any = None
        self.ticker: Ticker | None = None
        self.joined = 0

    def description(self, i: int) -> NodeDescription:
        executor = SimExecutor(
            self.spec.hostname(i), self.spec.resources(), self.spec.engine_labels_of(i)
        )
        return executor.describe()

    def run(self) -> None:
        self.bus.start()
        try:
            self.ref = AgentHost.start(self.bus)
            self.registry.add("agent", self.ref)
            self.ticker = Ticker(self.registry, ("agent",), TICK_INTERVAL)
            self.ticker.start()
            started = clock.monotonic()
            self._join_all()
            if not self.stop.is_set():
                log.info(
                    "%s: %d agents joined in %.1f s",
                    self.host_id,
                    self.joined,
                    clock.monotonic() - started,
                )
            self.stop.wait()
        finally:
            self.close()

    def close(self) -> None:
        if self.ticker is not None:
            self.ticker.stop()
        self.bus.stop()
        if self.ref is not None:
            self.ref.stop(timeout=5)

    # --- joining ------------------------------------------------------------------

    def _join_all(self) -> None:
        waiting = collections.deque(
            Joiner(i, _curve_keys(), self.description(i)) for i in self.indexes
        )
        inflight: dict[concurrent.futures.Future[Body], Joiner] = {}
        while (waiting or inflight) and not self.stop.is_set():
            while waiting and len(inflight) < JOIN_WINDOW:
                j = waiting.popleft()
                inflight[self._ask(j)] = j
            done, _ = concurrent.futures.wait(
                inflight, timeout=0.5, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in done:
                j = inflight.pop(future)
                try:
                    body = future.result()
                except (DeadlineExceeded, Unavailable, FailedPrecondition) as err:
                    j.attempts += 1
                    if j.attempts >= JOIN_ATTEMPTS:
                        raise JoinFailed(
                            f"agent {j.description.hostname} could not join after "
                            f"{j.attempts} attempts: {err}"
                        ) from None
                    log.warning("join of %s: %s; trying again", j.description.hostname, err)
                    waiting.append(j)
                    continue
                except SwarmError as err:
                    raise JoinFailed(f"join of {j.description.hostname} refused: {err}") from None
                if not isinstance(body, JoinAccepted):
                    raise JoinFailed(f"the manager answered a join with {body.kind}")
                self._joined(j, body)

    def _ask(self, j: Joiner) -> concurrent.futures.Future[Body]:
        # A retry reuses the key: the CA gives the same node back for it.
        self.bus.dial("", self.addr, self.pinned, keys=j.keys, local=j.pending_id)
        env = Envelope("", "", "ca", JoinRequest(self.token, j.description))
        return self.bus.request(env, JOIN_TIMEOUT, local=j.pending_id)

    def _joined(self, j: Joiner, accepted: JoinAccepted) -> None:
        try:
            info = certs.verify(accepted.certificate, accepted.root_ca, clock.wall())
        except SwarmError as err:
            raise JoinFailed(f"the manager issued an unusable certificate: {err}") from None
        if info.curve_key != j.keys.public or info.node_id != accepted.node_id:
            raise JoinFailed("the manager issued a certificate for another key")
        node_id = accepted.node_id
        registry = Registry(node_id)
        registry.add("agent", self.ref)
        self.bus.attach(registry)
        # The connection it joined over is its node's from now on.
        self.bus.rename("", accepted.manager_id, local=j.pending_id, new_local=node_id)
        self.ref.tell(AddAgent(node_id, accepted.manager_id, j.description, seed=j.index))
        self.joined += 1


def _curve_keys() -> CurveKeys:
    pair = certs.new_curve_keypair()
    return CurveKeys(pair.public, pair.secret)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pyswarmkit.bench.agents")
    parser.add_argument("--join-addr", required=True)
    parser.add_argument("--host", type=int, required=True)
    parser.add_argument("--agents", required=True, help="the [agents] table, as JSON")
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    token = os.environ.pop("SWARM_JOIN_TOKEN", "")
    if not token:
        print("agents: error: SWARM_JOIN_TOKEN is not set", file=sys.stderr)
        return 2
    spec = decode_agents(args.agents)
    indexes = range(args.first, args.first + args.count)
    proc = AgentHostProcess(args.join_addr, token, spec, indexes, args.host)
    parent = os.getppid()

    def on_signal(signum: int, frame: Any) -> None:
        proc.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_parent() -> None:
        # Belt and braces beside the parent-death signal: never run on headless.
        while not proc.stop.wait(0.5):
            if os.getppid() != parent:
                proc.stop.set()

    threading.Thread(target=watch_parent, name="watch-parent", daemon=True).start()
    try:
        proc.run()
    except SwarmError as err:
        print(f"agents: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

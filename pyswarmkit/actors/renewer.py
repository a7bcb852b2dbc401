"""Renews this node's certificate before it expires, with a fresh keypair.

The renewer asks the CA (over the bus, like any other request), checks what
comes back, saves it, and switches the transport to the new key. The node's
work and its dispatcher session carry on: sessions belong to the node ID, not
to the key.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pykka

from pyswarmkit import clock, display
from pyswarmkit.actors.base import GuardedActor
from pyswarmkit.actors.messages import Tick
from pyswarmkit.api.errors import Internal, SwarmError
from pyswarmkit.api.objects import CurveKeyPair
from pyswarmkit.api.protocol import Body, CertificateIssued, RenewCertificate
from pyswarmkit.ca import certs, files
from pyswarmkit.ca.files import Identity
from pyswarmkit.ca.renewal import Renewal
from pyswarmkit.transport.bus import Envelope
from pyswarmkit.transport.zmq_bus import CurveKeys

log = logging.getLogger(__name__)

# How long one renewal request may take before it counts as failed.
REQUEST_TIMEOUT = 30.0


class RenewingBus(Protocol):
    def request(self, envelope: Envelope, timeout: float) -> Future[Body]: ...

    def rekey(self, keys: CurveKeys) -> None: ...


@dataclass(frozen=True, slots=True)
class _Outcome:
    keypair: CurveKeyPair
    future: Future[Body]


class RenewNow:
    """Renew at once (the node's role changed), unless a renewal is under way."""


class RenewerActor(GuardedActor):
    name = "renewer"

    def __init__(
        self,
        node_id: str,
        manager_id: str | Callable[[], str],
        state_dir: Path,
        identity: Identity,
        bus: RenewingBus,
        scale: float = 1.0,
        on_renewed: Any = None,
    ) -> None:
        super().__init__()
        self.node_id = node_id
        self.manager_id = manager_id
        self.state_dir = state_dir
        self.identity = identity
        self.bus = bus
        self.on_renewed = on_renewed
        self.timer = Renewal(random.Random(), scale)
        self.renewals = 0
        self.asking = False

    def on_start(self) -> None:
        info = self.identity.info
        wall = clock.wall()
        # It was issued before now: a clock reading earlier than that is behind
        # the CA's, and would put the renewal off by as much.
        ca_now = max(wall, certs.issued_at(info))
        delay = self.timer.schedule(
            info.not_before, info.not_after, wall, clock.monotonic(), ca_now
        )
        log.info(
            "certificate valid until %s; renewal in %s",
            certs.iso(info.not_after),
            display.human_duration(delay).lower(),
        )

    def handle(self, message: Any) -> Any:
        if isinstance(message, Tick):
            if self.timer.start(message.now, message.wall):
                self._ask()
        elif isinstance(message, _Outcome):
            self.asking = False
            self._answered(message)
        elif isinstance(message, RenewNow) and not self.asking:
            log.info("renewing this node's certificate now: its role changed")
            self._ask()
        return None

    def _ask(self) -> None:
        self.asking = True
        keypair = certs.new_curve_keypair()
        manager = self.manager_id() if callable(self.manager_id) else self.manager_id
        env = Envelope(self.node_id, manager, "ca", RenewCertificate(keypair.public))
        future = self.bus.request(env, REQUEST_TIMEOUT)
        ref = self.actor_ref

        def answered(f: Future[Body]) -> None:
            # At shutdown the transport fails what is pending after this actor stopped.
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(_Outcome(keypair, f))

        future.add_done_callback(answered)

    def _answered(self, outcome: _Outcome) -> None:
        now = clock.monotonic()
        try:
            body = outcome.future.result(timeout=0)
            if not isinstance(body, CertificateIssued):
                raise Internal(f"the CA answered a renewal with {body.kind}")
            wall = clock.wall()
            # Valid by the CA's clock, which is the one that checks it: a clock here
            # an hour off must not make this node keep a key it is giving up.
            info = certs.verify_signed(body.certificate, body.root_ca)
            if info.curve_key != outcome.keypair.public or info.node_id != self.node_id:
                raise Internal("the CA issued a certificate for another key or node")
            files.save_identity(self.state_dir, outcome.keypair, body.certificate, body.root_ca)
            if body.server_secret:
                files.save_server_key(self.state_dir, body.server_secret)
        except (SwarmError, OSError, CancelledError) as exc:
            pause = self.timer.failed(now, clock.wall())
            log.warning("certificate renewal failed: %s; trying again in %.0fs", exc, pause)
            return
        self.identity = Identity(outcome.keypair, body.certificate, body.root_ca, info)
        self.bus.rekey(CurveKeys(outcome.keypair.public, outcome.keypair.secret))
        self.renewals += 1
        note = certs.clock_note(info, wall)
        if note:
            log.warning("%s", note)
        delay = self.timer.schedule(
            info.not_before, info.not_after, wall, now, ca_now=certs.issued_at(info)
        )
        log.info(
            "certificate renewed: valid until %s; next renewal in %s",
            certs.iso(info.not_after),
            display.human_duration(delay).lower(),
        )
        if self.on_renewed is not None:
            self.on_renewed(self.identity)

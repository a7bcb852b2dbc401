"""Secrets and configs on the manager: parsing --secret/--config, the checks on
names, data and references, the store's tables, and the control handlers."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from pyswarmkit.api import codec
from pyswarmkit.api.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from pyswarmkit.api.objects import (
    Annotations,
    Config,
    ConfigReference,
    ConfigSpec,
    ContainerSpec,
    Node,
    Secret,
    SecretReference,
    SecretSpec,
    Service,
    ServiceMode,
    ServiceSpec,
    TaskSpec,
    replace,
)
from pyswarmkit.control import secrets as refs
from pyswarmkit.control.handlers import Handlers, Reply, Write
from pyswarmkit.store.entries import (
    decode_batch,
    decode_snapshot,
    encode_batch,
    encode_snapshot,
)
from pyswarmkit.store.memory import Change, MemoryStore

pytestmark = pytest.mark.unit

DATA = b"hunter2-the-password"


def spec(name: str = "web", **container: Any) -> ServiceSpec:
    return ServiceSpec(
        annotations=Annotations(name=name),
        task=TaskSpec(container=ContainerSpec(command=("serve",), **container)),
        mode=ServiceMode(replicas=1),
    )


def write(store: MemoryStore, method: str, body: dict[str, Any]) -> dict[str, Any]:
    outcome = Handlers().handle(store, method, body)
    assert isinstance(outcome, Write)
    changes = outcome.build(store)
    batch = store.apply(changes, store.index + 1, 1.0) if changes else None
    return outcome.result(batch)


def read(store: MemoryStore, method: str, body: dict[str, Any]) -> dict[str, Any]:
    outcome = Handlers().handle(store, method, body)
    assert isinstance(outcome, Reply)
    return outcome.value


def new_secret(store: MemoryStore, name: str = "db-pass", data: bytes = DATA) -> str:
    body = {"spec": SecretSpec(annotations=Annotations(name=name), data=data)}
    return str(write(store, "secret.create", body)["id"])


def new_config(store: MemoryStore, name: str = "app.conf", data: bytes = b"port=80\n") -> str:
    body = {"spec": ConfigSpec(annotations=Annotations(name=name), data=data)}
    return str(write(store, "config.create", body)["id"])


# --- parsing ----------------------------------------------------------------------


def test_the_short_form_names_the_secret_and_its_file() -> None:
    assert refs.parse_secret("db-pass") == SecretReference(
        secret_name="db-pass", target="db-pass", uid="0", gid="0", mode=0o444
    )


def test_the_long_form_takes_docker_fields_and_an_octal_mode() -> None:
    r = refs.parse_secret("source=db-pass,target=pw,uid=1000,gid=50,mode=0400")
    assert (r.secret_name, r.target, r.uid, r.gid, r.mode) == ("db-pass", "pw", "1000", "50", 0o400)
    assert refs.parse_secret("src=a,mode=256").mode == 0o400
    assert refs.parse_secret("src=a,mode=0o440").mode == 0o440
    # Without a target the file is named after the secret, as Docker does.
    assert refs.parse_config("source=app.conf,mode=0440") == ConfigReference(
        config_name="app.conf", target="app.conf", mode=0o440
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "needs a value"),
        ("source=a,target", "must be a key=value pair"),
        ("target=x", "source is required"),
        ("source=a,colour=red", "unknown field 'colour'"),
        ("source=a,mode=rw", "invalid mode 'rw'"),
        ("source=a,mode=01000", "is not a file mode"),
        ("source=a,uid=root", "uid must be a number"),
        ("source=a,source=b", "source is given twice"),
        ("src=a,source=b", "source is given twice"),
        ("source=a,mode=0400,mode=0444", "mode is given twice"),
    ],
)
def test_a_malformed_secret_flag_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says) as err:
        refs.parse_secret(text)
    assert "\n" not in str(err.value)


def test_names_are_checked_as_swarmkit_does() -> None:
    for good in ("a", "db.pass_1", "A-b.c"):
        refs.validate_name(good)
    for bad in ("", "-a", "a.", "a b", "x" * 65, "a/b"):
        with pytest.raises(InvalidArgument):
            refs.validate_name(bad)


def test_data_must_be_some_and_under_the_limit() -> None:
    refs.validate_data("secret", b"x" * (500 * 1024 - 1))
    with pytest.raises(InvalidArgument, match="secret data must be larger than 0 and less than"):
        refs.validate_data("secret", b"x" * (500 * 1024))
    with pytest.raises(InvalidArgument, match="larger than 0"):
        refs.validate_data("secret", b"")
    # Configs may be twice as large.
    refs.validate_data("config", b"x" * (1000 * 1024 - 1))
    with pytest.raises(InvalidArgument, match="config data"):
        refs.validate_data("config", b"x" * (1000 * 1024))


def test_two_references_with_one_target_are_refused() -> None:
    c = ContainerSpec(
        secrets=(
            SecretReference(secret_name="a", target="pw"),
            SecretReference(secret_name="b", target="pw"),
        )
    )
    with pytest.raises(InvalidArgument, match="'a' and 'b' have a conflicting target: 'pw'"):
        refs.check_references(c)
    with pytest.raises(InvalidArgument, match="invalid target"):
        refs.check_references(
            ContainerSpec(secrets=(SecretReference(secret_name="a", target="../etc/x"),))
        )
    with pytest.raises(InvalidArgument, match=r"without empty \('//'\)"):
        refs.check_references(
            ContainerSpec(secrets=(SecretReference(secret_name="a", target="a//b"),))
        )
    for target in ("x/", "/run/x/"):
        with pytest.raises(InvalidArgument, match="it names a directory"):
            refs.check_references(
                ContainerSpec(configs=(ConfigReference(config_name="a", target=target),))
            )
    # One file for the process executor, or a file that would have to be a directory.
    for first, second in (("/x", "x"), ("a", "a/b"), ("a/b", "/a")):
        c = ContainerSpec(
            configs=(
                ConfigReference(config_name="a", target=first),
                ConfigReference(config_name="b", target=second),
            )
        )
        with pytest.raises(InvalidArgument, match="'a' and 'b' have a conflicting target"):
            refs.check_references(c)
    with pytest.raises(InvalidArgument, match="uid and gid must be at most"):
        refs.check_references(
            ContainerSpec(secrets=(SecretReference(secret_name="a", target="a", gid="9" * 20),))
        )
    # What did not come through the CLI's parsing is checked as well.
    with pytest.raises(InvalidArgument, match="uid and gid must be numbers"):
        refs.check_references(
            ContainerSpec(configs=(ConfigReference(config_name="a", target="a", uid="root"),))
        )


# --- the store ------------------------------------------------------------------------


def test_names_are_unique_per_kind_and_freed_by_removal() -> None:
    store = MemoryStore()
    s1 = Secret(id="s1", spec=SecretSpec(annotations=Annotations(name="same"), data=DATA))
    store.apply([Change("create", s1)], 1, 1.0)
    # A config may share a secret's name; a second secret may not.
    store.apply(
        [Change("create", Config(id="c1", spec=ConfigSpec(Annotations(name="same"))))], 2, 1.0
    )
    with pytest.raises(AlreadyExists, match="a secret named 'same' already exists"):
        store.apply([Change("create", replace(s1, id="s2"))], 3, 1.0)
    assert store.by_name("secret", "same") == store.get("secret", "s1")
    store.apply([Change("delete", store.get("secret", "s1"))], 4, 1.0)  # type: ignore[arg-type]
    store.apply([Change("create", replace(s1, id="s2"))], 5, 1.0)
    assert store.by_name("secret", "same").id == "s2"  # type: ignore[union-attr]


def test_batches_and_snapshots_carry_secrets_and_configs() -> None:
    s = Secret(id="s1", spec=SecretSpec(annotations=Annotations(name="pw"), data=DATA))
    c = Config(id="c1", spec=ConfigSpec(annotations=Annotations(name="conf"), data=b"x"))
    n = Node(id="n1")
    changes = [Change("create", s), Change("create", n), Change("delete", c), Change("update", s)]
    got, now = decode_batch(encode_batch(changes, 2.5))
    assert got == changes and now == 2.5
    index, objects = decode_snapshot(
        encode_snapshot(
            7, {"node": [n], "service": [], "task": [], "cluster": [], "secret": [s], "config": [c]}
        )
    )
    assert index == 7 and objects["secret"] == [s] and objects["config"] == [c]


class OldBatch(msgspec.Struct, array_like=True):
    """A batch as written before secrets and configs existed."""

    format: int
    now: float
    ops: list[int]
    nodes: list[Node]
    services: list[Service]
    tasks: list[Any]
    clusters: list[Any]


def test_entries_of_before_secrets_read_both_ways() -> None:
    n = Node(id="n1")
    old = codec.encode(OldBatch(1, 1.0, [0], [n], [], [], []))
    assert decode_batch(old) == ([Change("create", n)], 1.0)
    # A manager of before reads a batch holding no secret or config.
    back = codec.decode(encode_batch([Change("create", n)], 1.0), OldBatch)
    assert (back.ops, back.nodes) == ([0], [n])


# --- control handlers ---------------------------------------------------------------


def test_no_reply_carries_secret_data() -> None:
    store = MemoryStore()
    sid = new_secret(store)
    assert store.get("secret", sid).spec.data == DATA  # type: ignore[union-attr]
    replies = [
        read(store, "secret.list", {}),
        read(store, "secret.inspect", {"ref": "db-pass"}),
        read(store, "secret.inspect", {"ref": sid}),
    ]
    for reply in replies:
        assert DATA not in codec.packb(reply)
    assert read(store, "secret.inspect", {"ref": "db-pass"})["secret"].name == "db-pass"


def test_config_inspect_shows_its_data() -> None:
    store = MemoryStore()
    new_config(store)
    assert read(store, "config.inspect", {"ref": "app.conf"})["config"].spec.data == b"port=80\n"


def test_a_name_that_exists_is_refused() -> None:
    store = MemoryStore()
    new_secret(store)
    with pytest.raises(AlreadyExists, match="secret db-pass already exists"):
        new_secret(store)


def test_bad_secrets_are_refused_before_anything_is_written() -> None:
    store = MemoryStore()
    with pytest.raises(InvalidArgument, match="less than 512000 bytes"):
        new_secret(store, data=b"x" * (500 * 1024 + 1))
    with pytest.raises(InvalidArgument, match="larger than 0"):
        new_secret(store, data=b"")
    with pytest.raises(InvalidArgument, match="invalid name"):
        new_secret(store, name="no spaces")
    assert store.secrets() == []


def test_a_service_gets_the_ids_of_what_it_names() -> None:
    store = MemoryStore()
    sid, cid = new_secret(store), new_config(store)
    asked = spec(
        secrets=(refs.parse_secret("source=db-pass,target=pw,mode=0400"),),
        configs=(refs.parse_config("app.conf"),),
    )
    svc_id = write(store, "service.create", {"spec": asked})["id"]
    svc = store.get_service(svc_id)
    assert svc is not None
    c = svc.spec.task.container
    assert c.secrets == (
        SecretReference(secret_id=sid, secret_name="db-pass", target="pw", mode=0o400),
    )
    assert c.configs == (ConfigReference(config_id=cid, config_name="app.conf", target="app.conf"),)


def test_a_service_naming_a_missing_secret_is_refused() -> None:
    store = MemoryStore()
    new_secret(store)
    asked = spec(secrets=(refs.parse_secret("db-pass"), refs.parse_secret("nope")))
    with pytest.raises(NotFound, match=r"^secret not found: nope$"):
        write(store, "service.create", {"spec": asked})
    assert store.services() == []


def test_a_secret_in_use_is_not_removed_and_its_users_are_named() -> None:
    store = MemoryStore()
    new_secret(store)
    for name in ("api", "web"):
        write(
            store, "service.create", {"spec": spec(name, secrets=(refs.parse_secret("db-pass"),))}
        )
    with pytest.raises(
        FailedPrecondition,
        match=r"^secret 'db-pass' is in use by the following services: api, web$",
    ):
        write(store, "secret.remove", {"ref": "db-pass"})
    # Once no service uses it, it goes.
    for name in ("api", "web"):
        write(store, "service.remove", {"ref": name})
    write(store, "secret.remove", {"ref": "db-pass"})
    assert store.secrets() == []


def test_service_update_adds_and_drops_references() -> None:
    store = MemoryStore()
    new_secret(store)
    write(store, "service.create", {"spec": spec()})
    svc = store.service_by_name("web")
    assert svc is not None
    c = replace(svc.spec.task.container, secrets=(refs.parse_secret("db-pass"),))
    changed = replace(svc.spec, task=replace(svc.spec.task, container=c))
    write(store, "service.update", {"ref": "web", "version": svc.meta.version, "spec": changed})
    svc = store.service_by_name("web")
    assert svc is not None and svc.spec.task.container.secrets[0].secret_id
    with pytest.raises(FailedPrecondition, match="in use by the following service: web"):
        write(store, "secret.remove", {"ref": "db-pass"})
    missing = replace(c, secrets=(refs.parse_secret("gone"),))
    bad = replace(svc.spec, task=replace(svc.spec.task, container=missing))
    with pytest.raises(NotFound, match="secret not found: gone"):
        write(store, "service.update", {"ref": "web", "version": svc.meta.version, "spec": bad})


def test_a_rollback_to_a_spec_naming_a_removed_secret_is_refused() -> None:
    store = MemoryStore()
    new_secret(store)
    write(store, "service.create", {"spec": spec(secrets=(refs.parse_secret("db-pass"),))})
    svc = store.service_by_name("web")
    assert svc is not None
    without = replace(svc.spec.task.container, secrets=())
    plain = replace(svc.spec, task=replace(svc.spec.task, container=without))
    write(store, "service.update", {"ref": "web", "version": svc.meta.version, "spec": plain})
    write(store, "secret.remove", {"ref": "db-pass"})
    svc = store.service_by_name("web")
    assert svc is not None
    body = {"ref": "web", "version": svc.meta.version, "spec": svc.spec, "rollback": True}
    with pytest.raises(NotFound, match="secret not found: db-pass"):
        write(store, "service.update", body)

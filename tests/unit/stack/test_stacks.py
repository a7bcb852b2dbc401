"""stack.deploy, stack.list and stack.remove on a store: each one write that
happens whole or not at all; a redeploy changes only what changed."""

from __future__ import annotations

from typing import Any

import pytest

from pyswarmkit.api.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from pyswarmkit.api.objects import (
    Annotations,
    ConfigSpec,
    ContainerSpec,
    Secret,
    SecretReference,
    SecretSpec,
    Service,
    ServiceMode,
    ServiceSpec,
    TaskSpec,
    UpdateConfig,
    replace,
)
from pyswarmkit.control.handlers import Handlers, Reply, Write
from pyswarmkit.store.memory import Change, MemoryStore

pytestmark = pytest.mark.unit

NS = "com.docker.stack.namespace"


def svc(name: str, stack: str = "app", command: str = "serve", **container: Any) -> ServiceSpec:
    return ServiceSpec(
        annotations=Annotations(name=f"{stack}_{name}", labels={NS: stack}),
        task=TaskSpec(container=ContainerSpec(command=(command,), **container)),
        mode=ServiceMode(replicas=1),
    )


def secret(name: str, data: bytes = b"pw", stack: str = "app") -> SecretSpec:
    return SecretSpec(
        annotations=Annotations(name=f"{stack}_{name}", labels={NS: stack}), data=data
    )


def body(*services: ServiceSpec, secrets: tuple[SecretSpec, ...] = (), **kw: Any) -> dict[str, Any]:
    return {
        "name": "app",
        "services": list(services),
        "secrets": list(secrets),
        "configs": list(kw.pop("configs", ())),
        **kw,
    }


def write(store: MemoryStore, method: str, request: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The reply, and how many store writes (batches) it took."""
    outcome = Handlers().handle(store, method, request)
    assert isinstance(outcome, Write)
    changes = outcome.build(store)
    batch = store.apply(changes, store.index + 1, 1.0) if changes else None
    return outcome.result(batch), (1 if changes else 0)


def steps(result: dict[str, Any], action: str) -> list[str]:
    """The services a deploy says it created, updated or left unchanged."""
    return [name for name, done, _ in result["services"] if done == action]


def by_name(store: MemoryStore) -> dict[str, Service]:
    return {s.name: s for s in store.services()}


def test_a_deploy_creates_everything_in_one_write() -> None:
    store = MemoryStore()
    web = svc("web", secrets=(SecretReference(secret_name="app_pw", target="pw"),))
    result, writes = write(store, "stack.deploy", body(web, svc("db"), secrets=(secret("pw"),)))
    assert writes == 1
    assert steps(result, "created") == ["app_web", "app_db"]
    assert result["secrets"] == ["app_pw"]
    [pw] = store.secrets()
    # The reference was resolved against the secret made in the same write.
    assert by_name(store)["app_web"].spec.task.container.secrets[0].secret_id == pw.id


def test_deploying_the_same_again_changes_nothing() -> None:
    store = MemoryStore()
    request = body(svc("web"), svc("db"), secrets=(secret("pw"),))
    write(store, "stack.deploy", request)
    before = {s.name: s.meta.version for s in store.services()}
    result, writes = write(store, "stack.deploy", request)
    assert writes == 0
    assert steps(result, "unchanged") == ["app_web", "app_db"]
    assert {s.name: s.meta.version for s in store.services()} == before


def test_a_redeploy_updates_only_the_service_that_changed() -> None:
    store = MemoryStore()
    write(store, "stack.deploy", body(svc("web"), svc("db")))
    old = by_name(store)
    changed = replace(svc("web", command="serve2"), update=UpdateConfig(parallelism=2))
    result, _ = write(store, "stack.deploy", body(changed, svc("db")))
    assert result["services"] == [
        ["app_web", "updated", old["app_web"].id],
        ["app_db", "unchanged", old["app_db"].id],
    ]
    now = by_name(store)
    assert now["app_db"].meta.version == old["app_db"].meta.version
    web = now["app_web"]
    # The rolling update of service update: a new spec version, the old spec kept.
    assert web.spec_version == old["app_web"].spec_version + 1
    assert web.previous_spec == old["app_web"].spec
    assert web.spec.update.parallelism == 2


def test_a_redeploy_keeps_the_services_force_update_count() -> None:
    store = MemoryStore()
    write(store, "stack.deploy", body(svc("web")))
    [web] = store.services()
    forced = replace(web, spec=replace(web.spec, task=replace(web.spec.task, force_update=3)))
    store.apply([Change("update", forced)], store.index + 1, 1.0)
    _, writes = write(store, "stack.deploy", body(svc("web")))
    assert writes == 0


def test_a_missing_external_secret_fails_the_whole_deploy() -> None:
    store = MemoryStore()
    web = svc("web", secrets=(SecretReference(secret_name="shared", target="pw"),))
    with pytest.raises(NotFound, match=r"^secret not found: shared$"):
        write(store, "stack.deploy", body(web, svc("db"), secrets=(secret("pw"),)))
    assert store.services() == [] and store.secrets() == []


def test_an_existing_secret_with_other_data_is_refused() -> None:
    store = MemoryStore()
    write(store, "stack.deploy", body(svc("web"), secrets=(secret("pw", b"one"),)))
    with pytest.raises(FailedPrecondition, match="secret app_pw exists with other data"):
        write(store, "stack.deploy", body(svc("web"), svc("new"), secrets=(secret("pw", b"two"),)))
    assert "app_new" not in by_name(store)


def test_a_secret_the_stack_did_not_create_is_not_taken_over() -> None:
    store = MemoryStore()
    own = Secret(id="s0", spec=SecretSpec(Annotations(name="app_pw", labels={"team": "a"}), b"pw"))
    store.apply([Change("create", own)], 1, 1.0)
    with pytest.raises(FailedPrecondition, match="app_pw exists and is not part of stack app"):
        write(store, "stack.deploy", body(svc("web"), secrets=(secret("pw"),)))
    [kept] = store.secrets()
    assert kept.spec.annotations.labels == {"team": "a"} and store.services() == []


def test_a_service_of_the_name_outside_the_stack_is_refused() -> None:
    store = MemoryStore()
    plain = replace(svc("web"), annotations=Annotations(name="app_web"))
    store.apply([Change("create", Service(id="x", spec=plain))], 1, 1.0)
    with pytest.raises(AlreadyExists, match="not part of stack 'app'"):
        write(store, "stack.deploy", body(svc("web")))


def test_a_mode_change_is_refused() -> None:
    store = MemoryStore()
    write(store, "stack.deploy", body(svc("web")))
    global_ = replace(svc("web"), mode=ServiceMode(kind="global"))
    with pytest.raises(InvalidArgument, match="mode change is not allowed"):
        write(store, "stack.deploy", body(global_))


def test_services_left_out_stay_unless_pruned() -> None:
    store = MemoryStore()
    write(store, "stack.deploy", body(svc("web"), svc("db")))
    write(store, "stack.deploy", body(svc("web")))
    assert set(by_name(store)) == {"app_web", "app_db"}
    result, _ = write(store, "stack.deploy", body(svc("web"), prune=True))
    assert result["removed"] == ["app_db"]
    assert set(by_name(store)) == {"app_web"}


def test_a_request_must_hold_only_the_stacks_objects() -> None:
    store = MemoryStore()
    cases = [
        (body(svc("web", stack="other")), "is not of stack 'app'"),
        (body(svc("web"), svc("web")), "given twice"),
        (body(), "has no services to deploy"),
        (body(svc("web"), secrets=(secret("pw", stack="other"),)), "not labelled with stack"),
        ({**body(svc("web")), "name": "bad name"}, "invalid stack name"),
        (body(replace(svc("web"), mode=ServiceMode(replicas=-1))), "replicas must be 0"),
        ({**body(svc("web")), "services": ["x"]}, "list of ServiceSpec"),
    ]
    for request, message in cases:
        with pytest.raises(InvalidArgument, match=message):
            Handlers().handle(store, "stack.deploy", request)


def test_stack_list_counts_services_per_stack() -> None:
    store = MemoryStore()
    write(store, "stack.deploy", body(svc("web"), svc("db")))
    other = {"name": "zeta", "services": [svc("a", stack="zeta")], "secrets": [], "configs": []}
    write(store, "stack.deploy", other)
    outcome = Handlers().handle(store, "stack.list", {})
    assert isinstance(outcome, Reply)
    assert outcome.value["stacks"] == [
        {"name": "app", "services": 2},
        {"name": "zeta", "services": 1},
    ]


def test_stack_remove_deletes_services_secrets_and_configs_in_one_write() -> None:
    store = MemoryStore()
    conf = ConfigSpec(annotations=Annotations(name="app_conf", labels={NS: "app"}), data=b"c")
    web = svc("web", secrets=(SecretReference(secret_name="app_pw", target="pw"),))
    write(store, "stack.deploy", body(web, svc("db"), secrets=(secret("pw"),), configs=(conf,)))
    other = {"name": "zeta", "services": [svc("a", stack="zeta")], "secrets": [], "configs": []}
    write(store, "stack.deploy", other)
    result, writes = write(store, "stack.remove", {"name": "app"})
    assert writes == 1
    assert result == {
        "services": ["app_db", "app_web"],
        "secrets": ["app_pw"],
        "configs": ["app_conf"],
        "failed": [],
    }
    assert set(by_name(store)) == {"zeta_a"}
    assert store.secrets() == [] and store.configs() == []
    result, writes = write(store, "stack.remove", {"name": "app"})
    assert writes == 0 and result["services"] == [] and result["secrets"] == []


def test_stack_remove_keeps_a_secret_another_service_uses() -> None:
    store = MemoryStore()
    write(store, "stack.deploy", body(svc("web"), secrets=(secret("pw"),)))
    [pw] = store.secrets()
    user = replace(
        svc("x", stack="zeta"),
        task=TaskSpec(
            container=ContainerSpec(
                command=("y",),
                secrets=(SecretReference(secret_id=pw.id, secret_name="app_pw", target="p"),),
            )
        ),
    )
    store.apply([Change("create", Service(id="u", spec=user))], store.index + 1, 1.0)
    result, _ = write(store, "stack.remove", {"name": "app"})
    assert result["services"] == ["app_web"]
    assert result["failed"] == [
        "failed to remove secret app_pw: secret 'app_pw' is in use by the following service: zeta_x"
    ]
    assert [s.name for s in store.secrets()] == ["app_pw"]

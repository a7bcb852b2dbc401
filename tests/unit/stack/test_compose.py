"""Compose files -> stack specs: every key we read, and every bad input
refused in one line that names the file position."""

from __future__ import annotations

import errno
import textwrap
from pathlib import Path

import pytest

from pyswarmkit.api.objects import (
    ConfigReference,
    HealthConfig,
    PortConfig,
    SecretReference,
    ServiceSpec,
)
from pyswarmkit.api.states import RestartCondition
from pyswarmkit.stack import compose, convert, files, nodes
from pyswarmkit.stack.nodes import ComposeError

pytestmark = pytest.mark.unit

FILE = "compose.yml"


def plan(
    text: str,
    data: dict[str, bytes] | None = None,
    stack: str = "app",
    environ: dict[str, str] | None = None,
) -> convert.Plan:
    stored = data or {}

    def read_file(path: str, limit: int) -> bytes:
        if path not in stored:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        return stored[path][:limit]

    root = nodes.parse(textwrap.dedent(text), FILE)
    return convert.convert(compose.read(root, environ or {}), stack, "/dir", read_file)


def one(text: str, **kw: object) -> ServiceSpec:
    [spec] = plan(text, **kw).services  # type: ignore[arg-type]
    return spec


def error(text: str, **kw: object) -> str:
    with pytest.raises(ComposeError) as info:
        plan(text, **kw)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message
    return message


# --- what each key becomes ------------------------------------------------------


def test_a_service_is_named_and_labelled_with_its_stack() -> None:
    spec = one(
        """
        version: "3.8"
        services:
          web:
            image: nginx:1.25
            labels: {tier: front}
            deploy:
              labels: [owner=ops]
        """
    )
    assert spec.annotations.name == "app_web"
    assert spec.annotations.labels == {
        "owner": "ops",
        "com.docker.stack.namespace": "app",
        "com.docker.stack.image": "nginx:1.25",
    }
    c = spec.task.container
    assert c.image == "nginx:1.25"
    assert c.labels == {"tier": "front", "com.docker.stack.namespace": "app"}


def test_command_is_split_as_a_shell_would_and_becomes_the_arguments() -> None:
    c = one(
        """
        services:
          web:
            image: busybox
            command: sh -c 'echo "hello world"'
        """
    ).task.container
    assert c.command == ()
    assert c.args == ("sh", "-c", 'echo "hello world"')


def test_entrypoint_is_the_command_and_lists_stay_as_they_are() -> None:
    c = one(
        """
        services:
          web:
            image: busybox
            entrypoint: [/bin/sh, -c]
            command: ["echo hi"]
        """
    ).task.container
    assert c.command == ("/bin/sh", "-c")
    assert c.args == ("echo hi",)
    c = one("services:\n  web:\n    image: x\n    entrypoint: run --fast\n").task.container
    assert c.command == ("run", "--fast")


def test_without_an_image_the_command_is_all_that_runs() -> None:
    c = one("services:\n  w:\n    command: sleep 1000\n").task.container
    assert (c.image, c.command, c.args) == ("", ("sleep", "1000"), ())


def test_environment_as_a_map_or_a_list_sorted_and_filled_from_the_shell() -> None:
    c = one(
        """
        services:
          web:
            command: serve
            environment:
              B: 2
              A: "x y"
              DEBUG: true
              FROM_SHELL:
              UNSET:
        """,
        environ={"FROM_SHELL": "yes"},
    ).task.container
    assert c.env == ("A=x y", "B=2", "DEBUG=true", "FROM_SHELL=yes")
    c = one(
        "services:\n  web:\n    command: serve\n    environment: [Z=1, A=, HOME]\n",
        environ={"HOME": "/root"},
    ).task.container
    assert c.env == ("A=", "HOME=/root", "Z=1")


def test_working_dir_user_and_stopping() -> None:
    c = one(
        """
        services:
          web:
            command: serve
            working_dir: /srv
            user: "1000"
            stop_grace_period: 1m30s
            stop_signal: INT
        """
    ).task.container
    assert (c.dir, c.user, c.stop_grace_period, c.stop_signal) == ("/srv", "1000", 90.0, "SIGINT")


def test_deploy_replicas_and_modes() -> None:
    spec = one("services:\n  w:\n    command: x\n    deploy: {replicas: 3}\n")
    assert (spec.mode.kind, spec.mode.replicas) == ("replicated", 3)
    spec = one("services:\n  w:\n    command: x\n")
    assert (spec.mode.kind, spec.mode.replicas) == ("replicated", 1)
    spec = one("services:\n  w:\n    command: x\n    deploy: {mode: global}\n")
    assert spec.mode.kind == "global"
    spec = one("services:\n  w:\n    command: x\n    deploy: {mode: replicated-job, replicas: 4}\n")
    assert (spec.mode.kind, spec.mode.total_completions, spec.mode.max_concurrent) == (
        "replicated-job",
        4,
        4,
    )
    # As service create: a job is restarted only when it fails.
    assert spec.task.restart.condition == RestartCondition.ON_FAILURE


def test_placement() -> None:
    p = one(
        """
        services:
          w:
            command: x
            deploy:
              placement:
                constraints: [node.role == manager, node.labels.zone != b]
                preferences:
                  - spread: node.labels.zone
                max_replicas_per_node: 2
        """
    ).task.placement
    assert p.constraints == ("node.role == manager", "node.labels.zone != b")
    assert p.preferences == ("spread=node.labels.zone",)
    assert p.max_replicas == 2


def test_resources_with_units() -> None:
    r = one(
        """
        services:
          w:
            command: x
            deploy:
              resources:
                limits: {cpus: "1.5", memory: 1G}
                reservations: {cpus: 0.25, memory: 536870912}
        """
    ).task.resources
    assert (r.limits.nano_cpus, r.limits.memory_bytes) == (1_500_000_000, 1 << 30)
    assert (r.reservations.nano_cpus, r.reservations.memory_bytes) == (250_000_000, 1 << 29)


def test_restart_policy() -> None:
    r = one(
        """
        services:
          w:
            command: x
            deploy:
              restart_policy: {condition: on-failure, delay: 2s, max_attempts: 3, window: 1m}
        """
    ).task.restart
    assert (r.condition, r.delay, r.max_attempts, r.window) == (
        RestartCondition.ON_FAILURE,
        2.0,
        3,
        60.0,
    )


def test_update_and_rollback_config() -> None:
    spec = one(
        """
        services:
          w:
            command: x
            deploy:
              update_config:
                parallelism: 2
                delay: 10s
                failure_action: rollback
                monitor: 30s
                max_failure_ratio: 0.25
                order: start-first
              rollback_config: {parallelism: 0, failure_action: continue}
        """
    )
    u, rb = spec.update, spec.rollback
    assert (u.parallelism, u.delay, u.failure_action, u.monitor) == (2, 10.0, "rollback", 30.0)
    assert (u.max_failure_ratio, u.order) == (0.25, "start-first")
    assert (rb.parallelism, rb.failure_action, rb.delay, rb.order) == (
        0,
        "continue",
        0.0,
        "stop-first",
    )


def test_healthcheck_forms() -> None:
    h = one(
        """
        services:
          w:
            command: x
            healthcheck:
              test: ["CMD", "curl", "-f", "http://localhost"]
              interval: 5s
              timeout: 2s
              retries: 4
              start_period: 1s
        """
    ).task.container.healthcheck
    assert h == HealthConfig(
        test=("CMD", "curl", "-f", "http://localhost"),
        interval=5.0,
        timeout=2.0,
        retries=4,
        start_period=1.0,
    )
    h = one("services:\n  w:\n    command: x\n    healthcheck: {test: true && ok}\n")
    assert h.task.container.healthcheck.test == ("CMD-SHELL", "true && ok")
    h = one("services:\n  w:\n    command: x\n    healthcheck: {disable: true}\n")
    assert h.task.container.healthcheck.test == ("NONE",)


def test_ports_short_and_long_forms_publish_in_host_mode() -> None:
    ports = one(
        """
        services:
          w:
            command: x
            ports:
              - "8080:80"
              - 5353:53/udp
              - {target: 443, published: 8443, mode: host}
              - {target: 9000, published: 9000, protocol: udp, mode: host}
        """
    ).task.ports
    assert ports == (
        PortConfig(target_port=80, published_port=8080, protocol="tcp", publish_mode="host"),
        PortConfig(target_port=53, published_port=5353, protocol="udp", publish_mode="host"),
        PortConfig(target_port=443, published_port=8443, protocol="tcp", publish_mode="host"),
        PortConfig(target_port=9000, published_port=9000, protocol="udp", publish_mode="host"),
    )


SECRETS = """
services:
  web:
    command: serve
    secrets:
      - db_pass
      - source: api_key
        target: key.txt
        uid: "100"
        gid: "101"
        mode: 0400
    configs:
      - source: site
        target: /etc/site.conf
        mode: "0440"
secrets:
  db_pass:
    file: ./db.txt
    labels: {kind: db}
  api_key:
    external: true
    name: shared-api-key
configs:
  site:
    file: site.conf
"""


def test_secrets_and_configs_top_level_and_in_services() -> None:
    p = plan(SECRETS, data={"/dir/./db.txt": b"pw", "/dir/site.conf": b"listen 80\n"})
    [secret] = p.secrets
    assert secret.annotations.name == "app_db_pass"
    assert secret.annotations.labels == {"kind": "db", "com.docker.stack.namespace": "app"}
    assert secret.data == b"pw"
    [config] = p.configs
    assert (config.annotations.name, config.data) == ("app_site", b"listen 80\n")
    c = p.services[0].task.container
    # Sorted by name, as Docker sorts them (reordering the file changes nothing).
    assert c.secrets == (
        SecretReference(secret_name="app_db_pass", target="db_pass", mode=0o444),
        SecretReference(
            secret_name="shared-api-key", target="key.txt", uid="100", gid="101", mode=0o400
        ),
    )
    assert c.configs == (
        ConfigReference(config_name="app_site", target="/etc/site.conf", mode=0o440),
    )


def test_a_secret_may_be_named_and_an_external_one_is_only_referred_to() -> None:
    p = plan(
        """
        services:
          w: {command: x, secrets: [a, b]}
        secrets:
          a: {file: a.txt, name: plain-name}
          b: {external: {name: old-style}}
        """,
        data={"/dir/a.txt": b"1"},
    )
    assert [s.annotations.name for s in p.secrets] == ["plain-name"]
    names = [r.secret_name for r in p.services[0].task.container.secrets]
    assert names == ["old-style", "plain-name"]


def test_volumes_become_mounts() -> None:
    mounts = one(
        """
        services:
          w:
            command: x
            volumes:
              - /srv/data:/data:ro
              - ./conf:/etc/app
              - cache:/cache
              - shared:/shared:rw
              - /anonymous
              - {type: bind, source: /logs, target: /var/log, read_only: true}
              - {type: volume, source: cache, target: /cache2}
        volumes:
          cache:
          shared: {external: true}
        """
    ).task.container.mounts
    assert [(m.type, m.source, m.target, m.readonly) for m in mounts] == [
        ("bind", "/srv/data", "/data", True),
        ("bind", "/dir/conf", "/etc/app", False),
        ("volume", "app_cache", "/cache", False),
        ("volume", "shared", "/shared", False),
        ("volume", "", "/anonymous", False),
        ("bind", "/logs", "/var/log", True),
        ("volume", "app_cache", "/cache2", False),
    ]


def test_bad_volumes() -> None:
    def bad(entry: str, top: str = "") -> str:
        return error(f"services:\n  w:\n    command: x\n    volumes: [{entry}]\n{top}")

    assert bad("data:/d") == (
        'compose.yml:4:15: services.w.volumes[0]: undefined volume "data": '
        "declare it under the top-level volumes"
    )
    assert "volume target 'd' must be an absolute path" in bad("/x:d")
    assert "its mode is ro or rw, not 'z'" in bad("/x:/d:z")
    assert "use [SOURCE:]TARGET[:ro|rw]" in bad("a:b:c:d")
    assert "volume type 'tmpfs' is not supported" in bad("{type: tmpfs, target: /t}")
    assert "a bind mount needs a source" in bad("{type: bind, target: /t}")
    assert "'driver' is not supported" in bad("v:/d", "volumes:\n  v: {driver: nfs}\n")
    assert "duplicate mount point: /d" in bad("/a:/d, /b:/d")


def test_merge_keys_and_extension_fields() -> None:
    spec = one(
        """
        x-defaults: &defaults
          image: busybox
          deploy: {replicas: 2}
        services:
          web:
            <<: *defaults
            command: serve
            x-note: ignored
        """
    )
    assert spec.task.container.image == "busybox"
    assert spec.mode.replicas == 2


def test_load_reads_the_file_and_secret_files_beside_it(tmp_path: Path) -> None:
    (tmp_path / "pw.txt").write_bytes(b"s3cret")
    path = tmp_path / "stack.yml"
    path.write_text(
        "services:\n  w:\n    command: x\n    secrets: [pw]\nsecrets:\n  pw:\n    file: pw.txt\n"
    )
    p = files.load(str(path), "prod", {})
    assert p.secrets[0].data == b"s3cret"
    assert p.services[0].annotations.name == "prod_w"
    # A bind mount's relative source is beside the file, wherever swarmctl runs.
    path.write_text("services:\n  w:\n    command: x\n    volumes: [./data:/data]\n")
    [mount] = files.load(str(path), "prod", {}).services[0].task.container.mounts
    assert mount.source == str(tmp_path / "data")


def test_a_relative_bind_source_needs_a_directory() -> None:
    root = nodes.parse("services:\n  w:\n    command: x\n    volumes: [./d:/d]\n", "stdin")
    with pytest.raises(ComposeError, match=r"^stdin:4:15: services.w.volumes\[0\]: bind source"):
        convert.convert(compose.read(root, {}), "app", "", lambda p, n: b"")


# --- bad input: one line, with the place -----------------------------------------


def test_a_secret_file_path_with_a_nul_is_one_line(tmp_path: Path) -> None:
    # Found by fuzzing: open() raised ValueError, not OSError.
    path = tmp_path / "compose.yml"
    path.write_text('services:\n  w:\n    command: x\nsecrets:\n  s:\n    file: "a\\0b"\n')
    with pytest.raises(ComposeError, match="a path cannot hold a NUL character"):
        files.load(str(path), "app", {})


def test_a_file_nested_too_deeply_is_one_line() -> None:
    # Found by fuzzing: PyYAML's parser recursed out of the interpreter's stack.
    text = "services:\n  w:\n    command: " + "[" * 20_000 + "]" * 20_000 + "\n"
    assert error(text) == "compose.yml: nested too deeply to read"


def test_a_wrong_type_names_the_key_and_the_position() -> None:
    text = "services:\n  web:\n    command: x\n    deploy:\n      replicas: three\n"
    assert error(text) == (
        "compose.yml:5:17: services.web.deploy.replicas: expected an integer, got 'three'"
    )
    text = 'services:\n  web:\n    command: x\n    deploy:\n      replicas: "3"\n'
    assert error(text).endswith("expected an integer, got '3'")
    assert "expected a list, got a mapping" in error(
        "services:\n  w:\n    command: x\n    ports: {a: 1}\n"
    )
    assert "image: expected a string, got 5" in error("services:\n  w:\n    image: 5\n")
    assert "command: expected a string, got 42" in error("services:\n  w:\n    command: 42\n")


def test_a_syntax_error_names_the_position() -> None:
    message = error("services:\n  web:\n    command: [serve\n  db: {}\n")
    assert message == "compose.yml:4:5: expected ',' or ']', but got ':'"


def test_an_unknown_key_is_refused_with_its_position() -> None:
    assert error("services:\n  web:\n    imgae: nginx\n") == (
        "compose.yml:3:5: services.web.imgae: unknown key 'imgae'"
    )
    assert error("services:\n  w:\n    command: x\n    deploy: {replica: 2}\n") == (
        "compose.yml:4:14: services.w.deploy.replica: unknown key 'replica'"
    )


def test_an_unknown_top_level_key_is_refused() -> None:
    assert error("services:\n  w: {command: x}\nservise: {}\n") == (
        "compose.yml:3:1: servise: unknown key 'servise'"
    )


def test_compose_keys_we_cannot_honour_say_so() -> None:
    assert error("services:\n  w: {command: x}\nnetworks: {}\n") == (
        "compose.yml:3:1: networks: 'networks' is not supported by swarmctl stack deploy"
    )
    assert "services.w.build: 'build' is not supported" in error(
        "services:\n  w: {command: x, build: .}\n"
    )
    assert "services.w.privileged: 'privileged' is not supported" in error(
        "services:\n  w: {command: x, privileged: true}\n"
    )


def test_a_duplicate_service_is_refused() -> None:
    text = "services:\n  web:\n    command: a\n  web:\n    command: b\n"
    assert error(text) == (
        "compose.yml:4:3: services.web: duplicate key 'web' (first given on line 2)"
    )


def test_a_duplicate_key_inside_a_service_is_refused() -> None:
    assert "duplicate key 'command'" in error("services:\n  w:\n    command: a\n    command: b\n")


def test_an_empty_file_or_no_services() -> None:
    assert error("") == "compose.yml: the file is empty: it needs a services section"
    assert error("version: '3'\n") == "compose.yml:1:1: the file has no services section"
    assert error("services: {}\n") == "compose.yml:1:11: services: no services to deploy"
    assert "expected a mapping, got a list" in error("- a\n- b\n")


def test_the_missing_compose_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(ComposeError, match=f"cannot read {missing}: No such file or directory"):
        files.load(str(missing), "app", {})


def test_a_secret_file_that_is_missing_or_too_large() -> None:
    text = "services:\n  w: {command: x}\nsecrets:\n  pw:\n    file: pw.txt\n"
    assert error(text) == (
        "compose.yml:5:11: secrets.pw.file: cannot read pw.txt: No such file or directory"
    )
    big = error(text, data={"/dir/pw.txt": b"x" * (500 * 1024 + 10)})
    assert big.startswith("compose.yml:5:11: secrets.pw.file: secret data must be")
    assert "more than 512000 bytes" in big


def test_a_reference_to_an_undeclared_secret() -> None:
    assert error("services:\n  w:\n    command: x\n    secrets: [pw]\n") == (
        'compose.yml:4:15: services.w.secrets[0]: undefined secret "pw": '
        "declare it under the top-level secrets"
    )


def test_bad_values_are_refused_where_they_are() -> None:
    cases = {
        "deploy: {mode: daemon}": "services.w.deploy.mode: unknown mode 'daemon'",
        "deploy: {mode: global, replicas: 2}": (
            "services.w.deploy.replicas: replicas can only be used with replicated"
        ),
        "deploy: {resources: {limits: {memory: lots}}}": (
            "services.w.deploy.resources.limits.memory: invalid memory 'lots'"
        ),
        "deploy: {resources: {limits: {cpus: x}}}": "invalid cpus 'x'",
        "deploy: {placement: {constraints: [node.zone = a]}}": "services.w.deploy.placement:",
        "deploy: {restart_policy: {condition: always}}": "invalid restart condition 'always'",
        "deploy: {restart_policy: {delay: soon}}": (
            "services.w.deploy.restart_policy.delay: invalid restart delay 'soon'"
        ),
        "deploy: {update_config: {order: random}}": (
            "services.w.deploy.update_config: update order must be one of"
        ),
        "deploy: {rollback_config: {failure_action: rollback}}": (
            "services.w.deploy.rollback_config: rollback failure action must be one of"
        ),
        "deploy: {update_config: {parallelism: -1}}": "update parallelism must be 0",
        "deploy: {endpoint_mode: dnsrr}": "'endpoint_mode' is not supported",
        "healthcheck: {test: [SHELL, x]}": (
            "services.w.healthcheck: healthcheck test must start with NONE, CMD or CMD-SHELL"
        ),
        "healthcheck: {test: [CMD, x], disable: true}": (
            "test and disable can't be set at the same time"
        ),
        "healthcheck: {interval: often}": "services.w.healthcheck.interval: invalid",
        "ports: ['127.0.0.1:80:80']": "services.w.ports[0]: invalid port '127.0.0.1:80:80'",
        "ports: ['80']": "invalid port '80'",
        "ports: [{target: 80, published: 80}]": "port mode 'ingress' is not supported",
        "ports: [{target: 80, mode: host}]": "a host-mode port needs a published port",
        "ports: ['70000:80']": "port 70000 is out of range",
        "ports: [{target: 80, published: 80, mode: host, protocol: icmp}]": "unknown protocol",
        "ports: ['80:80', '80:81']": "services.w: port 80/tcp is published twice",
        "environment: ['=x']": "invalid environment entry '=x'",
        "stop_signal: SIGNOPE": "services.w.stop_signal: --stop-signal: no signal 'SIGNOPE'",
        "stop_grace_period: forever": "services.w.stop_grace_period: invalid",
        'entrypoint: "echo \'unclosed"': "services.w.entrypoint: cannot split",
        "secrets: [{target: x}]": "services.w.secrets[0]: a reference needs a source",
        "deploy: {labels: {a: [1]}}": "expected a single value, got a list",
        "deploy: {restart_policy: {max_attempts: 99999999999999999999}}": (
            "services.w.deploy.restart_policy.max_attempts: 99999999999999999999 is out of range"
        ),
        "deploy: {replicas: 100001}": "replicas must be at most 100000",
    }
    for line, expected in cases.items():
        message = error(f"services:\n  w:\n    command: x\n    {line}\n")
        assert message.startswith("compose.yml:"), message
        assert expected in message, (line, message)


def test_a_reference_with_a_bad_mode_or_target() -> None:
    text = (
        "services:\n  w:\n    command: x\n    secrets:\n"
        "      - {{source: pw, {}}}\nsecrets:\n  pw: {{external: true}}\n"
    )
    assert "mode 01000 is not a file mode" in error(text.format("mode: 01000"))
    assert "expected a file mode such as 0400, got 'rw'" in error(text.format("mode: rw"))
    assert "invalid target '../x'" in error(text.format("target: ../x"))


def test_a_secret_needs_a_file_or_external() -> None:
    text = "services:\n  w: {command: x}\nsecrets:\n  pw: {labels: {a: b}}\n"
    assert error(text) == "compose.yml:4:7: secrets.pw: needs a file (or external: true)"
    text = "services:\n  w: {command: x}\nsecrets:\n  pw: {external: true, file: x}\n"
    assert "an external one has no file" in error(text)
    text = "services:\n  w: {command: x}\nsecrets:\n  pw: {file: a, driver: vault}\n"
    assert "'driver' is not supported" in error(text)


def test_a_service_needs_something_to_run() -> None:
    assert "a service needs something to run" in error("services:\n  w:\n    user: root\n")


def test_the_stack_name_must_fit_in_a_service_name() -> None:
    with pytest.raises(Exception, match="invalid stack name 'my app'"):
        plan("services:\n  w: {command: x}\n", stack="my app")
    assert "invalid service name 'app_w_'" in error("services:\n  w_: {command: x}\n")

#!/usr/bin/env bash
# A private Docker engine for the Docker executor's tests, with test images
# built locally (no image registry is needed or used).
#
#   scripts/docker-engine.sh start [DIR]   install docker.io if dockerd is missing (root,
#                                          apt-get), start dockerd under DIR, build the images;
#                                          prints DOCKER_HOST=unix://DIR/docker.sock
#   scripts/docker-engine.sh images        (re)build the images on $DOCKER_HOST
#   scripts/docker-engine.sh stop [DIR]    stop that dockerd, remove its containers and DIR
#
# DIR defaults to /tmp/pyswarmkit-docker. Tests find the engine through
# DOCKER_HOST (or PYSWARMKIT_DOCKER_HOST); without one they are skipped.
#
# dockerd runs with:
#   --iptables=false   a test engine leaves the machine's firewall alone (without it
#                      dockerd adds DOCKER chains and NAT rules that outlive it)
#   --bridge=none      and its network devices (no docker0 bridge left behind); the
#                      test containers need no network, and get loopback only
#   --exec-root, --pidfile, --data-root under DIR: nothing shared with a system dockerd
#
# Images: a rootfs of Debian's busybox-static (/bin/busybox plus applet links,
# /etc/passwd with root and nobody) imported with `docker import` and a CMD that
# sleeps; tagged busybox:latest and redis:3.0.5, redis:3.0.6, redis:3.0.7 (the
# README's walkthrough), which are the same rootfs with different tags, so an
# update from one to the next replaces every container all the same.
set -euo pipefail

DIR="${2:-${PYSWARMKIT_DOCKER_DIR:-/tmp/pyswarmkit-docker}}"
SOCK="$DIR/docker.sock"
TAGS=(busybox:latest redis:3.0.5 redis:3.0.6 redis:3.0.7)

say() { echo "docker-engine: $*" >&2; }

install() {
    if command -v dockerd >/dev/null && [ -x /bin/busybox ] && file_is_static /bin/busybox; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        say "dockerd or busybox-static missing and not root: cannot install docker.io"
        return 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io busybox-static >/dev/null
}

file_is_static() {
    # busybox-static's binary runs with no library in the image.
    ! ldd "$1" >/dev/null 2>&1
}

docker_() { docker -H "unix://$SOCK" "$@"; }

start() {
    install || return 1
    mkdir -p "$DIR"
    if [ -S "$SOCK" ] && docker_ version >/dev/null 2>&1; then
        say "already running on $SOCK"
    else
        # Started detached from this shell's process group so CI's steps do not stop it.
        setsid dockerd \
            --host "unix://$SOCK" \
            --data-root "$DIR/root" \
            --exec-root "$DIR/exec" \
            --pidfile "$DIR/dockerd.pid" \
            --iptables=false \
            --bridge=none \
            >"$DIR/dockerd.log" 2>&1 </dev/null &
        for _ in $(seq 1 150); do
            if [ -S "$SOCK" ] && docker_ version >/dev/null 2>&1; then
                break
            fi
            if ! kill -0 "$!" 2>/dev/null; then
                say "dockerd exited at start; its log:"
                tail -20 "$DIR/dockerd.log" >&2
                return 1
            fi
            sleep 0.2
        done
        docker_ version >/dev/null 2>&1 || { say "dockerd did not answer on $SOCK"; return 1; }
    fi
    DOCKER_HOST="unix://$SOCK" images
    echo "DOCKER_HOST=unix://$SOCK"
}

images() {
    local root
    root="$(mktemp -d)"
    mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root" "$root/data"
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    local first="${TAGS[0]}"
    tar -C "$root" -c . | docker import \
        -c 'CMD ["sh", "-c", "trap \"exit 0\" TERM; sleep 86400 & wait"]' -c 'ENV PATH=/bin' - "$first" >/dev/null
    rm -rf "$root"
    for tag in "${TAGS[@]:1}"; do
        docker tag "$first" "$tag"
    done
    say "images: ${TAGS[*]}"
}

stop() {
    if [ -S "$SOCK" ] && docker_ version >/dev/null 2>&1; then
        local ids
        ids="$(docker_ ps -aq)"
        [ -z "$ids" ] || docker_ rm -f $ids >/dev/null 2>&1 || true
        if docker_ info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null | grep -q active; then
            docker_ swarm leave --force >/dev/null 2>&1 || true
        fi
    fi
    if [ -f "$DIR/dockerd.pid" ]; then
        local pid
        pid="$(cat "$DIR/dockerd.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    # Swarm mode (benchmarks/docker_executor.py) leaves its gateway bridge behind.
    if ! pgrep -x dockerd >/dev/null && ip link show docker_gwbridge >/dev/null 2>&1; then
        ip link del docker_gwbridge 2>/dev/null || true
    fi
    # Overlay mounts of removed containers are gone; whatever is left under
    # the exec root is unmounted before the directory goes.
    grep -o " $DIR/[^ ]*" /proc/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$DIR"
}

case "${1:-}" in
    start) start ;;
    images) images ;;
    stop) stop ;;
    *)
        echo "usage: $0 start|images|stop [DIR]" >&2
        exit 2
        ;;
esac

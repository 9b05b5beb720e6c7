# shellcheck shell=bash
# Shared helpers for the infra/ scripts. Source it; do not execute it.
#
# Everything here is plain bash so the scripts run on a clean Debian 12 machine before anything
# else is installed.

# The repository root, whichever script sourced us.
# shellcheck disable=SC2034 # used by the scripts that source this file
RADSTREAM_REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# Caches shared by every checkout on this machine (CI clones the repo afresh each run).
RADSTREAM_CACHE_DIR="${RADSTREAM_CACHE_DIR:-$HOME/.cache/radstream}"
# The Kafka-protocol broker: pinned version, built once with `cargo install` into the cache.
TANSU_VERSION="0.6.0"
TANSU_ROOT="$RADSTREAM_CACHE_DIR/tansu-$TANSU_VERSION"
TANSU_DEFAULT_BIN="$TANSU_ROOT/bin/tansu"
# Python packages go here when the system Python refuses pip (Debian's PEP 668 marker).
RADSTREAM_VENV="$RADSTREAM_CACHE_DIR/venv"

log() { printf '[%s] %s\n' "${LOG_TAG:-infra}" "$*" >&2; }
die() { printf '[%s] error: %s\n' "${LOG_TAG:-infra}" "$*" >&2; exit 1; }

# Escape a string for use inside a JSON string literal (config files hold user-given passwords).
json_escape() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/\\r}
    s=${s//$'\t'/\\t}
    printf '%s' "$s"
}

# True when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# True when PID names a live process (a zombie counts as dead: nothing may reap it here).
pid_alive() {
    local pid=$1 state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # The state follows the command name, which is in parentheses and may contain spaces.
    state=$(sed -E 's/^.*\) ([A-Za-z]).*$/\1/' "/proc/$pid/stat" 2>/dev/null || true)
    [[ -n $state && $state != Z ]]
}

# The command line of PID with arguments separated by spaces.
pid_cmdline() {
    tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
}

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $* (run as root or install sudo)"
    fi
}

# Install Debian packages quietly, logging apt's output to $RADSTREAM_CACHE_DIR/install.log.
# `apt-get update` runs only when something is actually installed. Services that packages ship
# (orthanc) are kept from starting: we run our own processes, never the Debian service.
apt_install() {
    (($# > 0)) || return 0
    local install_log="$RADSTREAM_CACHE_DIR/install.log" policy=/usr/sbin/policy-rc.d created_policy=0
    mkdir -p "$RADSTREAM_CACHE_DIR"
    log "installing Debian packages: $* (log: $install_log)"
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\n# radstream infra: keep apt from starting services\nexit 101\n' |
            as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        created_policy=1
    fi
    local rc=0
    {
        echo "=== $(date -Is) apt-get install $*"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
    } >>"$install_log" 2>&1 || rc=$?
    if ((created_policy)); then
        as_root rm -f "$policy"
    fi
    if ((rc != 0)); then
        tail -n 30 "$install_log" >&2 || true
        die "apt-get install $* failed (exit $rc); full log: $install_log"
    fi
}

# The Python interpreter that has (or will get) moto and pydicom: $RADSTREAM_PYTHON when set,
# else our virtualenv when it exists, else python3 from PATH.
radstream_python() {
    if [[ -n ${RADSTREAM_PYTHON:-} ]]; then
        printf '%s' "$RADSTREAM_PYTHON"
    elif [[ -x $RADSTREAM_VENV/bin/python ]]; then
        printf '%s' "$RADSTREAM_VENV/bin/python"
    else
        command -v python3 || printf 'python3'
    fi
}

# The tansu binary: $RADSTREAM_TEST_TANSU_BIN when set, else the cached build.
tansu_bin() {
    printf '%s' "${RADSTREAM_TEST_TANSU_BIN:-$TANSU_DEFAULT_BIN}"
}

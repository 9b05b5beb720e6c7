#!/usr/bin/env bash
# Run the test FHIR R4 server (Medplum's FHIR router, in memory) in the foreground on 127.0.0.1.
#
# usage: infra/fhir/run.sh --port PORT [--modules DIR] [--bearer-token-file FILE]
#
# Base URL http://127.0.0.1:PORT/fhir/R4; state in memory only: a restart starts empty. DIR is
# the node_modules folder with the Medplum packages (default
# ~/.cache/radstream/fhir-server/node_modules, where infra/stack.sh install puts them). With
# --bearer-token-file every FHIR request must carry `Authorization: Bearer <FILE's content>`
# and is answered 401 otherwise (tests of the sinks' bearer auth run their own server so; the
# stack's shared one asks for nothing). See server.mjs for what it answers and for its
# test-only failure hook (POST /__test/fail).
set -euo pipefail
LOG_TAG=run-fhir
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() { die "usage: $0 --port PORT [--modules DIR] [--bearer-token-file FILE]"; }

port=""
modules="$RADSTREAM_CACHE_DIR/fhir-server/node_modules"
auth=()
while (($# > 0)); do
    case $1 in
        --port) port=${2:-}; shift 2 || usage ;;
        --modules) modules=${2:-}; shift 2 || usage ;;
        --bearer-token-file)
            [[ -n ${2:-} ]] || usage
            [[ -r $2 && -s $2 ]] || die "--bearer-token-file $2: not a readable, non-empty file"
            auth=(--bearer-token-file "$2")
            shift 2
            ;;
        -h | --help) usage ;;
        *) log "unknown argument: $1"; usage ;;
    esac
done
[[ $port =~ ^[0-9]+$ ]] || usage

command -v node >/dev/null 2>&1 || die "node not found; run infra/stack.sh install"
[[ -f $modules/@medplum/fhir-router/package.json ]] ||
    die "@medplum/fhir-router not found in $modules; run infra/stack.sh install"

log "FHIR R4 server on http://127.0.0.1:$port/fhir/R4 (node $(node --version), modules $modules${auth:+, bearer token required})"
exec node "$(dirname "${BASH_SOURCE[0]}")/server.mjs" --port "$port" --modules "$modules" ${auth[@]+"${auth[@]}"}

#!/usr/bin/env bash
# Run moto's S3-compatible server in the foreground on 127.0.0.1.
#
# usage: infra/s3/run-moto.sh --port PORT
#
# Path-style addressing (http://127.0.0.1:PORT/BUCKET/KEY), any credentials accepted, state in
# memory only: a restart starts with no buckets. The interpreter is $RADSTREAM_PYTHON, else the
# radstream virtualenv in ~/.cache/radstream/venv when present, else python3
# (infra/stack.sh install puts moto in one of them).
set -euo pipefail
LOG_TAG=run-moto
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() { die "usage: $0 --port PORT"; }

port=""
while (($# > 0)); do
    case $1 in
        --port) port=${2:-}; shift 2 || usage ;;
        -h | --help) usage ;;
        *) log "unknown argument: $1"; usage ;;
    esac
done
[[ $port =~ ^[0-9]+$ ]] || usage

python=$(radstream_python)
"$python" -c 'import moto.server' 2>/dev/null ||
    die "moto server not importable by $python; run infra/stack.sh install"

log "moto S3 server on 127.0.0.1:$port ($python)"
exec "$python" -m moto.server -H 127.0.0.1 -p "$port"

#!/usr/bin/env bash
# Run a tansu Kafka-protocol broker in the foreground on 127.0.0.1.
#
# usage: infra/kafka/run-tansu.sh --port PORT --data DIR [--cluster-id ID]
#
# Topics, records and committed offsets live in the SQLite file DIR/tansu.db, so stopping the
# broker and starting it again on the same DIR keeps them. tansu does not create topics on first
# use: create them with the Kafka admin API or `tansu topic create --broker tcp://127.0.0.1:PORT`.
# The binary is $RADSTREAM_TEST_TANSU_BIN, else the cached build (infra/kafka/install-tansu.sh).
# Set RUST_LOG (e.g. RUST_LOG=debug) for more broker logging.
set -euo pipefail
LOG_TAG=run-tansu
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() { die "usage: $0 --port PORT --data DIR [--cluster-id ID]"; }

port="" data="" cluster_id="radstream-test"
while (($# > 0)); do
    case $1 in
        --port) port=${2:-}; shift 2 || usage ;;
        --data) data=${2:-}; shift 2 || usage ;;
        --cluster-id) cluster_id=${2:-}; shift 2 || usage ;;
        -h | --help) usage ;;
        *) log "unknown argument: $1"; usage ;;
    esac
done
[[ $port =~ ^[0-9]+$ ]] || usage
[[ -n $data ]] || usage

tansu=$(tansu_bin)
[[ -x $tansu ]] || die "tansu binary not found at $tansu; run infra/kafka/install-tansu.sh"

mkdir -p "$data"
data=$(cd "$data" && pwd)
# tansu resolves a sqlite:// URL against its working directory (and reads a .env file from it),
# so run it from the data directory and name the database relative to it.
cd "$data"
# A schema registry inherited from the caller's environment would make the broker validate
# records against it.
unset SCHEMA_REGISTRY
log "tansu on 127.0.0.1:$port, storage $data/tansu.db, cluster $cluster_id"
exec "$tansu" broker \
    --cluster-id "$cluster_id" \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "sqlite://./tansu.db"

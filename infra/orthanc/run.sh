#!/usr/bin/env bash
# Run Orthanc with its DICOMweb plugin in the foreground, with a config generated into DIR.
#
# usage: infra/orthanc/run.sh --http-port PORT --dir DIR --user USER --password PASSWORD [--verbose]
#
# DIR/orthanc.json is rewritten on every start; DIR/storage and DIR/index keep the stored
# instances, so a restart on the same DIR sees what was stored before. Tests use this to run an
# Orthanc of their own that they can stop and start again.
#
# HTTP only, no DICOM (DIMSE) listener. Orthanc 1.10 cannot bind its HTTP server to one address,
# so "RemoteAccessAllowed": false makes it refuse every client that is not on the loopback
# interface; HTTP basic authentication is required on top of that. The DICOMweb root is
# /dicom-web/. "OverwriteInstances": false means a second STOW-RS of the same SOP instance keeps
# the stored one instead of replacing it.
#
# ORTHANC_BIN (default /usr/sbin/Orthanc) and ORTHANC_PLUGIN_DIR (default
# /usr/share/orthanc/plugins) override the Debian locations.
set -euo pipefail
LOG_TAG=run-orthanc
# shellcheck source-path=SCRIPTDIR source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

usage() { die "usage: $0 --http-port PORT --dir DIR --user USER --password PASSWORD [--verbose]"; }

port="" dir="" user="" password="" verbose=()
while (($# > 0)); do
    case $1 in
        --http-port) port=${2:-}; shift 2 || usage ;;
        --dir) dir=${2:-}; shift 2 || usage ;;
        --user) user=${2:-}; shift 2 || usage ;;
        --password) password=${2:-}; shift 2 || usage ;;
        --verbose) verbose=(--verbose); shift ;;
        -h | --help) usage ;;
        *) log "unknown argument: $1"; usage ;;
    esac
done
[[ $port =~ ^[0-9]+$ ]] || usage
[[ -n $dir && -n $user && -n $password ]] || usage

orthanc=${ORTHANC_BIN:-/usr/sbin/Orthanc}
plugin="${ORTHANC_PLUGIN_DIR:-/usr/share/orthanc/plugins}/libOrthancDicomWeb.so"
[[ -x $orthanc ]] || die "Orthanc not found at $orthanc; run infra/stack.sh install (apt-get install orthanc)"
[[ -f $plugin ]] || die "DICOMweb plugin not found at $plugin; run infra/stack.sh install (apt-get install orthanc-dicomweb)"

mkdir -p "$dir/storage" "$dir/index"
dir=$(cd "$dir" && pwd)
config="$dir/orthanc.json"

# The config holds the password: readable by us only.
(
    umask 077
    cat >"$config.tmp" <<EOF
{
  "Name": "radstream-test",
  "StorageDirectory": "$(json_escape "$dir/storage")",
  "IndexDirectory": "$(json_escape "$dir/index")",
  "StorageCompression": false,
  "MaximumStorageSize": 0,
  "MaximumPatientCount": 0,
  "Plugins": ["$(json_escape "$plugin")"],
  "ConcurrentJobs": 2,
  "SaveJobs": false,

  "HttpServerEnabled": true,
  "HttpPort": $port,
  "HttpDescribeErrors": true,
  "HttpCompressionEnabled": false,
  "KeepAlive": true,
  "TcpNoDelay": true,
  "HttpThreadsCount": 50,
  "HttpTimeout": 60,
  "SslEnabled": false,
  "WebDavEnabled": false,

  "DicomServerEnabled": false,
  "DicomAet": "RADSTREAM",

  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": true,
  "RegisteredUsers": { "$(json_escape "$user")": "$(json_escape "$password")" },
  "ExecuteLuaEnabled": false,
  "RestApiWriteToFileSystemEnabled": false,

  "OverwriteInstances": false,
  "DeidentifyLogs": true,

  "DicomWeb": {
    "Enable": true,
    "Root": "/dicom-web/",
    "EnableWado": true,
    "WadoRoot": "/wado",
    "StudiesMetadata": "Full",
    "SeriesMetadata": "Full"
  }
}
EOF
)
mv -f "$config.tmp" "$config"

log "Orthanc on 127.0.0.1:$port (HTTP only), data in $dir"
exec "$orthanc" "${verbose[@]}" "$config"

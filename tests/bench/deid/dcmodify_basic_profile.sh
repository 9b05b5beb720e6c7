#!/usr/bin/env bash
# The dcmtk baseline: the PS3.15 Basic Profile from table_e1_1.tsv applied by one dcmodify process
# to every file of a directory.
#
# usage: dcmodify_basic_profile.sh DIR [--rounds K] [--table TSV] [--keep OUT_DIR]
#
# dcmodify edits in place, so each round copies DIR to a temporary folder first (untimed); only
# the one dcmodify invocation over all the copies is timed. --keep leaves the last round's
# outputs in OUT_DIR. Prints per-round lines on stderr and one JSON line on stdout:
# {"tool":"dcmodify","files":N,"seconds":S,"per_second":R,...} with the median round's figures.
#
# The arguments are generated from the table (with pydicom's dictionary for the VR of each tag):
#   -ep                     private tags, erased first (the later operations then have less to
#                           walk: the order that favours dcmodify)
#   X                       -ea "(gggg,eeee)"          erased at any depth
#   Z, X/Z                  -ma "(gggg,eeee)="         zero length at any depth
#   D, Z/D, X/D, X/Z/D      -ma "(gggg,eeee)=DUMMY"    a dummy value of the tag's VR
#   Z or D on a sequence    -ea                        dcmodify cannot empty or replace a
#                                                      sequence with -ma ("Unable to modify tag")
#   X/Z/U*                  nothing: the sequence is kept, the U rows reach the UIDs inside
#   U                       SOP Instance UID: -gin (a fresh random UID per file, which also
#                           updates the meta header's Media Storage SOP Instance UID); every
#                           other UID: -ma "(gggg,eeee)=<a fixed UID>". dcmodify cannot compute a
#                           keyed pseudonym (HMAC of the original UID), so the replacement is not
#                           consistent per original value as it is in radstream and the pydicom
#                           baseline; -gst/-gse would give every file its own study and series.
#   50XX,XXXX (curves)      not expressible (dcmodify has no element wildcards); curves are
#                           retired and absent from the inputs. 60XX rows: expanded to the 16
#                           overlay groups.
#   (0000,eeee)             skipped: command-set tags are never in a file, and dcmodify refuses
#                           to erase group 0000
#   PatientIdentityRemoved  -i "(0012,0062)=YES", DeidentificationMethod -i "(0012,0063)=..."
# with -ie (go on after an error), -imt (a missing tag is not an error), -nb (no backups).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
table="$here/../../../operators/src/pseudonymize/table_e1_1.tsv"
rounds=3
keep=""
dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds="$2"; shift 2 ;;
        --table) table="$2"; shift 2 ;;
        --keep) keep="$2"; shift 2 ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        -*) echo "unknown flag $1" >&2; exit 2 ;;
        *) dir="$1"; shift ;;
    esac
done
[ -n "$dir" ] || { echo "usage: $0 DIR [--rounds K] [--table TSV] [--keep OUT_DIR]" >&2; exit 2; }
command -v dcmodify >/dev/null || { echo "dcmodify not found (apt-get install dcmtk)" >&2; exit 1; }

mapfile -d '' ops < <(python3 - "$table" <<'EOF'
import sys
from pydicom.datadict import dictionary_VR

DUMMY = {"AE": "ANONYMOUS", "AS": "000Y", "DA": "19000101", "DS": "0", "DT": "19000101000000",
         "IS": "0", "TM": "000000", "UI": "2.25.0", "FL": "0", "FD": "0", "SL": "0", "SS": "0",
         "UL": "0", "US": "0", "SV": "0", "UV": "0", "OB": "0", "OW": "0", "UN": "0"}
FIXED_UID = "2.25.1"
ops = ["-ep"]
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if not l.startswith("#")][1:]
for fields in rows:
    tag, action = fields[0], fields[1]
    if tag == "private" or tag.startswith("50") or tag.startswith("0000"):
        continue  # group 0000 is the command set, never in a file; dcmodify refuses to touch it
    tags = [tag] if "X" not in tag else [f"{0x6000 + 2 * g:04X}{tag[4:]}" for g in range(16)]
    for t in tags:
        path = f"({t[:4]},{t[4:]})"
        try:
            vr = dictionary_VR(int(t, 16)).split(" or ")[0]
        except KeyError:
            vr = "LO"
        if action == "X" or (vr == "SQ" and action not in ("K", "X/Z/U*", "U")):
            ops += ["-ea", path]
        elif action in ("Z", "X/Z"):
            ops += ["-ma", f"{path}="]
        elif "D" in action:
            ops += ["-ma", f"{path}={DUMMY.get(vr, 'ANONYMIZED')}"]
        elif action == "U":
            if t == "00080018":
                ops += ["-gin"]
            elif t != "00020003":  # follows -gin
                ops += ["-ma", f"{path}={FIXED_UID}"]
        elif action in ("K", "X/Z/U*"):
            pass
        else:
            sys.exit(f"unhandled action {action!r} for {t}")
ops += ["-i", "(0012,0062)=YES", "-i", "(0012,0063)=PS3.15 E.1-1 Basic Profile (dcmodify baseline)"]
sys.stdout.write("\0".join(ops) + "\0")
EOF
)

[ "${#ops[@]}" -gt 100 ] || { echo "could not generate dcmodify arguments from $table" >&2; exit 1; }

mapfile -t files < <(find "$dir" -maxdepth 1 -type f | sort)
[ "${#files[@]}" -gt 0 ] || { echo "no files in $dir" >&2; exit 1; }
bytes=$(cat "${files[@]}" | wc -c)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

seconds=()
errors=0
for r in $(seq 1 "$rounds"); do
    rm -rf "$work/in"
    mkdir "$work/in"
    cp "${files[@]}" "$work/in/"
    copies=("$work/in"/*)
    start=$(date +%s.%N)
    set +e
    dcmodify -ie -imt -nb "${ops[@]}" "${copies[@]}" 2>"$work/stderr"
    rc=$?
    set -e
    end=$(date +%s.%N)
    s=$(echo "$end - $start" | bc -l)
    seconds+=("$s")
    errors=$(grep -c '^E:' "$work/stderr" || true)
    printf 'dcmodify round %d: %.1f instances/s, %.1f MB/s (exit %d, %d error lines)\n' "$r" \
        "$(echo "${#files[@]} / $s" | bc -l)" "$(echo "$bytes / $s / 1000000" | bc -l)" "$rc" "$errors" >&2
done
if [ -n "$keep" ]; then
    mkdir -p "$keep"
    cp "$work/in"/* "$keep/"
fi

python3 - "${#files[@]}" "$bytes" "${#ops[@]}" "$errors" "${seconds[@]}" <<'EOF'
import json, statistics, sys
files, total, ops, errors = (int(x) for x in sys.argv[1:5])
rounds = [float(x) for x in sys.argv[5:]]
median = statistics.median(rounds)
print(json.dumps({
    "tool": "dcmodify",
    "files": files,
    "seconds": round(median, 4),
    "per_second": round(files / median, 2),
    "mb_per_second": round(total / median / 1e6, 2),
    "rounds": [round(s, 4) for s in rounds],
    "arguments": ops,
    "error_lines_last_round": errors,
    "timed": "one dcmodify process over all files, in place, on disk (page cache)",
}))
EOF

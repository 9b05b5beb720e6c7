#!/usr/bin/env python3
"""The pydicom baseline: the PS3.15 Basic Profile from table_e1_1.tsv applied with pydicom.

usage: pydicom_basic_profile.py DIR [--rounds K] [--key-file K] [--table TSV] [--out OUT_DIR]

Every file of DIR is read into memory first. A round then does, for each file and on one thread:
dcmread from an in-memory buffer, apply the profile, dcmwrite to an in-memory buffer. Only that
per-file work is timed (no disk I/O in the timed loop, as for the Rust benchmark, which also works
from memory). After the last round, --out writes the de-identified files to a directory, untimed.

The profile, as a typical pydicom de-identifier implements it:
  - every element is looked up in Table E.1-1, at any depth (sequence items included), the file
    meta information included;
  - K and tags the table does not list: kept; sequences are walked into;
  - X: removed; Z and X/Z: zero length; D and every combination with D (Z/D, X/D, X/Z/D): a dummy
    value of the element's VR; X/Z/U* (reference sequences): kept and walked into, so that the
    UIDs inside are replaced;
  - U: each UID value becomes "2.25." + the decimal integer of the first 16 bytes of
    HMAC-SHA256(key, uid) (consistent across files, keyed);
  - C (only in option columns) does not occur in the basic profile;
  - private tags (odd groups, private creators included): removed;
  - PatientIdentityRemoved = YES and DeidentificationMethod added.
Elements that need no action are left as pydicom read them (raw, not decoded), which is how a
careful pydicom implementation avoids decoding what it does not change.

Prints per-round lines on stderr and one JSON line on stdout:
{"tool":"pydicom","files":N,"seconds":S,"per_second":R,...} with the median round's figures.
"""

import argparse
import base64
import hashlib
import hmac
import io
import json
import statistics
import sys
import time
from pathlib import Path

from pydicom import dcmread
from pydicom.dataelem import DataElement
from pydicom.datadict import dictionary_VR
from pydicom.sequence import Sequence

HERE = Path(__file__).resolve().parent
DEFAULT_TABLE = HERE.parents[2] / "operators" / "src" / "pseudonymize" / "table_e1_1.tsv"
# Used when no --key-file is given; bench_deid uses the same bytes. A benchmark value, not a
# secret: run.sh generates a fresh key file for each run.
BENCH_SECRET = bytes(range(32))

DUMMY = {
    "AE": "ANONYMOUS", "AS": "000Y", "CS": "ANONYMIZED", "DA": "19000101", "DS": "0",
    "DT": "19000101000000", "IS": "0", "LO": "ANONYMIZED", "LT": "ANONYMIZED", "PN": "ANONYMIZED",
    "SH": "ANONYMIZED", "ST": "ANONYMIZED", "TM": "000000", "UC": "ANONYMIZED", "UT": "ANONYMIZED",
    "UR": "ANONYMIZED", "UI": "2.25.0", "FL": 0.0, "FD": 0.0, "SL": 0, "SS": 0, "UL": 0, "US": 0,
    "SV": 0, "UV": 0, "AT": 0, "OB": b"\0\0", "OW": b"\0\0", "OD": b"\0" * 8, "OF": b"\0" * 4,
    "OL": b"\0" * 4, "OV": b"\0" * 8, "UN": b"\0\0",
}


def load_table(path):
    """{tag: action} for exact tags, and [(mask, tag, action)] for the XX (repeating-group) rows."""
    exact, masked = {}, []
    with open(path) as f:
        lines = [line.rstrip("\n") for line in f if not line.startswith("#")]
    for line in lines[1:]:
        fields = line.split("\t")
        tag, action = fields[0], fields[1]
        if tag == "private":
            continue  # handled by the odd-group rule
        if "X" in tag:
            mask = int("".join("0" if c == "X" else "F" for c in tag), 16)
            masked.append((mask, int(tag.replace("X", "0"), 16), action))
        else:
            exact[int(tag, 16)] = action
    return exact, masked


def load_key(path):
    """The secret from the radstream key file format (`id = "..."`, `secret = "hex or base64"`)."""
    for line in path.read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() == "secret":
            value = value.strip().strip('"')
            try:
                return bytes.fromhex(value)
            except ValueError:
                return base64.b64decode(value, validate=True)
    sys.exit(f"{path}: no `secret` line")


class BasicProfile:
    def __init__(self, table, key):
        self.exact, self.masked = table
        self.key = key
        self.uid_cache = {}

    def action(self, tag):
        action = self.exact.get(tag)
        if action is None and 0x5000 <= tag >> 16 <= 0x601E:
            for mask, value, masked_action in self.masked:
                if tag & mask == value:
                    return masked_action
        return action

    def pseudonym(self, uid):
        digest = hmac.new(self.key, uid.encode("ascii"), hashlib.sha256).digest()
        return f"2.25.{int.from_bytes(digest[:16], 'big')}"

    def apply(self, ds):
        for tag in list(ds.keys()):
            if tag.is_private:
                del ds[tag]
                continue
            action = self.action(tag)
            if action is None or action == "K" or action == "X/Z/U*":
                raw = ds.get_item(tag)
                if raw.VR == "SQ" or (raw.VR is None and dictionary_VR_or_none(tag) == "SQ"):
                    for item in ds[tag].value:
                        self.apply(item)
                continue
            if action == "X":
                del ds[tag]
            elif action in ("Z", "X/Z"):
                elem = ds[tag]
                elem.value = Sequence() if elem.VR == "SQ" else None
            elif "D" in action:
                elem = ds[tag]
                if elem.VR == "SQ":
                    elem.value = Sequence()
                else:
                    elem.value = DUMMY.get(elem.VR, "ANONYMIZED")
            elif action == "U":
                elem = ds[tag]
                if elem.value is None or elem.value == "":
                    continue
                values = elem.value if elem.VM > 1 else [elem.value]
                new = [self.pseudonym(str(v)) for v in values]
                elem.value = new if elem.VM > 1 else new[0]
            else:
                raise ValueError(f"unhandled action {action!r} for {tag}")

    def deidentify(self, data):
        ds = dcmread(io.BytesIO(data))
        self.apply(ds.file_meta)
        self.apply(ds)
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "PS3.15 E.1-1 Basic Profile (pydicom baseline)"
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()


def dictionary_VR_or_none(tag):
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--key-file", type=Path, help="radstream key file (default: a fixed bench key)")
    p.add_argument("--table", type=Path, default=DEFAULT_TABLE)
    p.add_argument("--out", type=Path, help="write the last round's outputs here (untimed)")
    a = p.parse_args()

    paths = sorted(x for x in a.dir.iterdir() if x.is_file())
    inputs = [x.read_bytes() for x in paths]
    total_bytes = sum(map(len, inputs))
    profile = BasicProfile(load_table(a.table), load_key(a.key_file) if a.key_file else BENCH_SECRET)
    rounds = []
    outputs = []
    for r in range(a.rounds):
        outputs = []
        started = time.perf_counter()
        for data in inputs:
            outputs.append(profile.deidentify(data))
        seconds = time.perf_counter() - started
        rounds.append(seconds)
        print(f"pydicom round {r + 1}: {len(inputs) / seconds:.1f} instances/s, "
              f"{total_bytes / seconds / 1e6:.1f} MB/s", file=sys.stderr)
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        for path, data in zip(paths, outputs):
            (a.out / path.name).write_bytes(data)
    median = statistics.median(rounds)
    print(json.dumps({
        "tool": "pydicom",
        "files": len(inputs),
        "seconds": round(median, 4),
        "per_second": round(len(inputs) / median, 2),
        "mb_per_second": round(total_bytes / median / 1e6, 2),
        "rounds": [round(s, 4) for s in rounds],
        "timed": "dcmread+profile+dcmwrite, in-memory buffers, one thread",
    }))


if __name__ == "__main__":
    main()

"""Writes the seeds of every fuzz target into tests/fuzz/seeds/<target>/.

Seeds are public test files (pydicom's, radstream's own decoder fixtures) and hand-made
messages: every one is synthetic, none holds a patient. They are committed; run.sh hands them to
libFuzzer beside the corpus it grows (tests/fuzz/corpus/<target>/, kept minimized), and the test
suite replays both, the seeds first (tests/tests/fuzz_corpus.rs).
"""
import glob, hashlib, json, os, struct, sys

import pydicom
from pydicom.encaps import generate_frames

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "seeds")

CODECS = {
    "decode_rle": ["1.2.840.10008.1.2.5"],
    "decode_jpeg_baseline": ["1.2.840.10008.1.2.4.50"],
    "decode_jpeg_extended": ["1.2.840.10008.1.2.4.51"],
    "decode_jpeg_lossless": ["1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"],
    "decode_jpeg_ls": ["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"],
    "decode_jpeg_2000": ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"],
    "decode_htj2k": ["1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"],
}
MAX_SEED = 64 * 1024


def put(target, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def dicom_files():
    data = os.path.join(os.path.dirname(pydicom.__file__), "data")
    files = sorted(glob.glob(os.path.join(data, "test_files", "*.dcm")))
    files += sorted(glob.glob(os.path.join(data, "charset_files", "*.dcm")))
    files += sorted(glob.glob(os.path.join(ROOT, "operators/src/dicom/decode/testdata/*.dcm")))
    return files


def main():
    for path in dicom_files():
        raw = open(path, "rb").read()
        if len(raw) <= MAX_SEED:
            put("header", raw)
            put("decode_part10", raw)
        try:
            ds = pydicom.dcmread(path, force=True)
            syntax = str(ds.file_meta.TransferSyntaxUID)
        except Exception:
            continue
        for target, syntaxes in CODECS.items():
            if syntax not in syntaxes or "PixelData" not in ds:
                continue
            try:
                frame = next(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))
            except Exception:
                continue
            if len(frame) > MAX_SEED:
                continue
            flags = (1 if int(ds.BitsAllocated) == 16 else 0) | (2 if int(ds.SamplesPerPixel) == 3 else 0)
            params = struct.pack("<HHB", (int(ds.Rows) - 1) % 1024, (int(ds.Columns) - 1) % 1024, flags)
            put(target, params + frame)
    event = {
        "study_instance_uid": "1.2.826.0.1.3680043.8.498.1",
        "series_instance_uid": "1.2.826.0.1.3680043.8.498.2",
        "sop_instance_uid": "1.2.826.0.1.3680043.8.498.3",
        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2",
        "modality": "CT",
        "body_part_examined": "CHEST",
        "instance_number": 1,
        "expected_series_instances": None,
        "priority": "ROUTINE",
        "source": "seed",
        "event_time_ms": 1765000000000,
        "object": {"bucket": "dicom-in", "key": "synthetic/1.dcm", "size": 1024, "etag": None},
    }
    put("event_json", json.dumps(event).encode())
    put("event_json", json.dumps({**event, "priority": "STAT", "object": {"bucket": "b", "key": "k"}}).encode())
    put("event_avro", b"\x00\x00\x00\x00\x01" + avro(event))
    for name in ("ObjectCreated:Put", "ObjectCreated:CompleteMultipartUpload", "ObjectRemoved:Delete"):
        record = {"eventName": name, "s3": {"bucket": {"name": "dicom-in"}, "object": {"key": "synthetic%2F1.dcm", "size": 1024, "eTag": "abc"}}}
        put("event_s3_notification", json.dumps({"Records": [record, record]}).encode())
    sop = {"00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]}, "00081155": {"vr": "UI", "Value": ["1.2.3.4"]}}
    put("stow_response", json.dumps({"00081199": {"vr": "SQ", "Value": [sop]}}).encode())
    put("stow_response", json.dumps([{"00081198": {"vr": "SQ", "Value": [{**sop, "00081197": {"vr": "US", "Value": [272]}}]}}]).encode())
    put("stow_response", json.dumps({"00081199": {"vr": "SQ", "Value": [{**sop, "00081196": {"vr": "US", "Value": [45056]}}]}}).encode())
    put("stow_response", b"<html><body>Sign in</body></html>")
    entry = lambda status, location: {"response": {"status": status, "location": location}}
    put("fhir_response", json.dumps({"resourceType": "Bundle", "type": "transaction-response", "entry": [entry("201 Created", "DiagnosticReport/1/_history/1"), entry("200 OK", "Observation/2")]}).encode())
    put("fhir_response", json.dumps({"resourceType": "Bundle", "type": "transaction-response", "entry": [entry("201", "Patient/3"), {"response": {"status": "422", "outcome": {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid"}]}}}]}).encode())
    put("fhir_response", json.dumps({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing"}]}).encode())


def zigzag(n):
    n = (n << 1) ^ (n >> 63)
    out = b""
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def avro(event):
    """The Avro binary encoding of an InstanceEvent v1 (schemas/avro/instance_event.v1.avsc)."""
    text = lambda s: zigzag(len(s.encode())) + s.encode()
    optional = lambda v, enc: zigzag(0) if v is None else zigzag(1) + enc(v)
    o = event["object"]
    out = text(o["bucket"]) + text(o["key"]) + optional(o["size"], zigzag) + optional(o["etag"], text)
    for field in ("study_instance_uid", "series_instance_uid", "sop_instance_uid", "sop_class_uid", "modality"):
        out += text(event[field])
    out += optional(event["body_part_examined"], text)
    out += optional(event["instance_number"], zigzag)
    out += optional(event["expected_series_instances"], zigzag)
    out += zigzag(["ROUTINE", "STAT"].index(event["priority"]))
    out += optional(event["source"], text)
    out += zigzag(event["event_time_ms"])
    return out


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Writes the preprocessing benchmark's inputs: one synthetic head CT slice in several transfer syntaxes.

usage: make_inputs.py OUT_DIR [--seed S] [--no-lossy]

The slice is 512x512, signed 16-bit (PixelRepresentation 1, BitsStored 16), Rescale Slope 1 and
Intercept 0, so stored values are Hounsfield units. It is a phantom that compresses like a real
head slice rather than like noise or like a flat image:

  - air at -1000 HU with scanner-like noise (sigma 6) outside the head;
  - a scalp of soft tissue (~30 HU), then a skull ring of ~700-1300 HU with a denser outer and
    inner table and a lower diploe between them;
  - brain: grey matter (~40 HU) near the cortex, white matter (~28 HU) inside, noise sigma 7;
  - two lateral ventricles (CSF ~8 HU), a hyperdense bleed (~70 HU), a calcified pineal gland
    (~250 HU) and a headrest below the head (~150 HU);
  - edges softened by a 3x3 box blur, as a reconstruction kernel would.

Files written into OUT_DIR, each the same data set with the same pixel values:

  explicit.dcm   Explicit VR Little Endian (1.2.840.10008.1.2.1), native pixel data
  rle.dcm        RLE Lossless (1.2.840.10008.1.2.5)
  jpegls.dcm     JPEG-LS Lossless (1.2.840.10008.1.2.4.80), encoded with pyjpegls
  j2k.dcm        JPEG 2000 Lossless (1.2.840.10008.1.2.4.90), encoded with pylibjpeg-openjpeg
  j2k-lossy.dcm  JPEG 2000 (1.2.840.10008.1.2.4.91), irreversible, compression ratio 10
                 (left out with --no-lossy)
  original.npy   the int16 array, to check that the lossless files decode to it
  manifest.json  [{"name", "file", "transfer_syntax", "uid", "lossless", "bytes"}] in this order

Each lossless file is read back with pydicom and compared with the array before it is listed.
The output depends on --seed only (UIDs included), so two runs write the same files. Needs
pydicom 3, numpy, pylibjpeg with pylibjpeg-openjpeg and pylibjpeg-rle, and pyjpegls.
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    JPEG2000,
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

ROWS = COLUMNS = 512


def uid(seed, *parts):
    """A UID under pydicom's root derived from the seed and parts: reproducible."""
    return generate_uid(entropy_srcs=[seed, *map(str, parts)])


def ellipse(y, x, cy, cx, ry, rx, angle=0.0):
    """Normalized radius of each pixel in the ellipse (< 1 inside)."""
    c, s = np.cos(angle), np.sin(angle)
    dy, dx = y - cy, x - cx
    u = (dx * c + dy * s) / rx
    v = (-dx * s + dy * c) / ry
    return np.sqrt(u * u + v * v)


def box_blur(image):
    """3x3 mean, edges repeated."""
    padded = np.pad(image, 1, mode="edge")
    out = np.zeros_like(image)
    for dy in range(3):
        for dx in range(3):
            out += padded[dy:dy + ROWS, dx:dx + COLUMNS]
    return out / 9.0


def phantom(seed):
    """The head slice, int16 Hounsfield units."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "little"))
    y, x = np.mgrid[0:ROWS, 0:COLUMNS].astype(np.float64)
    hu = np.full((ROWS, COLUMNS), -1000.0)

    # Headrest: a curved band under the head.
    rest = ellipse(y, x, 560, 256, 130, 230)
    hu[(rest < 1.0) & (rest > 0.82)] = 150.0

    head = ellipse(y, x, 250, 256, 230, 185)
    hu[head < 1.0] = 30.0  # scalp
    skull_outer, skull_inner = 0.975, 0.90
    skull = (head < skull_outer) & (head >= skull_inner)
    # Dense outer and inner tables, lower diploe between them, varying around the skull.
    depth = (skull_outer - head) / (skull_outer - skull_inner)  # 0 outside .. 1 inside
    tables = 1300.0 - 600.0 * np.exp(-((depth - 0.5) ** 2) / 0.04)
    around = 1.0 + 0.08 * np.sin(5 * np.arctan2(y - 250, x - 256))
    hu[skull] = (tables * around)[skull]

    brain = head < skull_inner
    cortex = np.clip((head - 0.72) / 0.18, 0.0, 1.0)  # 0 deep .. 1 at the skull
    hu[brain] = (28.0 + 12.0 * cortex)[brain]
    for cx, angle in ((226, 0.25), (286, -0.25)):
        hu[ellipse(y, x, 235, cx, 42, 13, angle) < 1.0] = 8.0
    hu[ellipse(y, x, 180, 330, 22, 30, 0.6) < 1.0] = 70.0  # bleed
    hu[ellipse(y, x, 290, 256, 4, 4) < 1.0] = 250.0  # pineal calcification

    hu = box_blur(hu)
    sigma = np.where(brain, 7.0, 6.0)
    hu += rng.normal(0.0, 1.0, hu.shape) * sigma
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


# The attributes every file shares, by keyword: a minimal CT image whose stored values are HU.
HEADER = {
    "SpecificCharacterSet": "ISO_IR 100",
    "SOPClassUID": CTImageStorage,
    "PatientName": "SYNTH^PHANTOM^HEAD",
    "PatientID": "SYNHEAD0001",
    "StudyDate": "20260314", "SeriesDate": "20260314", "ContentDate": "20260314",
    "StudyTime": "101500", "SeriesTime": "101500", "ContentTime": "101500",
    "Modality": "CT",
    "Manufacturer": "SYNTH MEDICAL SYSTEMS",
    "BodyPartExamined": "HEAD",
    "SeriesNumber": 2,
    "InstanceNumber": 1,
    "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
    "KVP": "120",
    "SliceThickness": "5.0",
    "ImagePositionPatient": ["-115.0", "-115.0", "40.0"],
    "ImageOrientationPatient": ["1", "0", "0", "0", "1", "0"],
    "PixelSpacing": ["0.449219", "0.449219"],
    # Image pixel module: signed 16-bit, all 16 bits stored, identity rescale.
    "SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2", "Rows": ROWS, "Columns": COLUMNS,
    "BitsAllocated": 16, "BitsStored": 16, "HighBit": 15, "PixelRepresentation": 1,
    "RescaleIntercept": "0", "RescaleSlope": "1", "RescaleType": "HU",
    "WindowCenter": "40", "WindowWidth": "80",
}


def template(seed, pixels):
    ds = Dataset()
    for keyword, value in HEADER.items():
        setattr(ds, keyword, value)
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        setattr(ds, keyword, uid(seed, keyword))
    ds.PixelData = pixels.tobytes()
    ds["PixelData"].VR = "OW"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationVersionName = "RADSTREAM_BENCH"
    ds.file_meta = meta
    return ds


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--seed", default="radstream-preprocess-bench", help="seed (default fixed)")
    p.add_argument("--no-lossy", action="store_true", help="leave out the lossy JPEG 2000 file")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)

    pixels = phantom(a.seed)
    np.save(a.out / "original.npy", pixels)
    syntaxes = [
        ("explicit", ExplicitVRLittleEndian, True, {}),
        ("rle", RLELossless, True, {}),
        ("jpegls", JPEGLSLossless, True, {}),
        ("j2k", JPEG2000Lossless, True, {}),
    ]
    if not a.no_lossy:
        syntaxes.append(("j2k-lossy", JPEG2000, False, {"j2k_cr": [10]}))

    manifest = []
    for name, ts, lossless, options in syntaxes:
        ds = template(a.seed, pixels)
        if ts != ExplicitVRLittleEndian:
            try:
                ds.compress(ts, pixels, generate_instance_uid=False, **options)
            except Exception as e:  # a missing encoder plugin: say which, keep the others
                print(f"{name}: cannot encode {ts.name}: {e}", file=sys.stderr)
                continue
        if not lossless:
            # A lossy copy is a new instance that says so (PS3.3 C.7.6.1.1.5).
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid(a.seed, "SOPInstanceUID", name)
            ds.LossyImageCompression = "01"
            ds.LossyImageCompressionRatio = f"{pixels.nbytes / len(ds.PixelData):.2f}"
            ds.LossyImageCompressionMethod = "ISO_15444_1"
        path = a.out / f"{name}.dcm"
        ds.save_as(path, enforce_file_format=True)
        back = dcmread(path).pixel_array
        if lossless and not np.array_equal(back, pixels):
            sys.exit(f"{path}: pydicom does not decode it to the original array")
        size = path.stat().st_size
        manifest.append({"name": name, "file": path.name, "transfer_syntax": ts.name, "uid": str(ts),
                         "lossless": lossless, "bytes": size})
        error = "" if lossless else f", max abs error {int(np.abs(back.astype(np.int32) - pixels).max())} HU"
        print(f"{path}: {ts.name}, {size} bytes{error}", file=sys.stderr)
    (a.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()

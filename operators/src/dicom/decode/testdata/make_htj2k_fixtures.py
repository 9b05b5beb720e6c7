#!/usr/bin/env python3
"""Makes the htj2k_* fixtures of tests/htj2k.rs from synthetic images (no patient data).

Run from anywhere: python3 make_htj2k_fixtures.py [--bench DIR]
Needs Python >= 3.12 with numpy, pydicom 3, ojph (OpenJPH's Python bindings: the HTJ2K encoder;
the fixtures were made with ojph 0.10.2) and pylibjpeg-openjpeg (OpenJPEG >= 2.5, the reference
decoder, through pydicom). For example:
    python3.12 -m venv /tmp/htj2k && /tmp/htj2k/bin/pip install ojph pydicom pylibjpeg-openjpeg numpy

Every fixture is decoded again by pydicom + pylibjpeg-openjpeg; a lossless one that does not
come back exactly stops the script.

Writes, for each case NAME below, htj2k_NAME.dcm (Secondary Capture, one frame, encapsulated)
and, for the lossless ones, htj2k_NAME.raw (the original samples, little endian, pixels
interleaved); for the lossy ones htj2k_NAME.openjpeg.raw (pylibjpeg-openjpeg's decode, same
layout), their originals being those of the lossless case of the same image.

- ct_s16: 128x128 MONOCHROME2, 16 bits signed, a CT-like phantom in -1024..3071 with noise;
  reversible, LRCP, transfer syntax .201 (HTJ2K Lossless Only).
- u8: 64 columns x 48 rows MONOCHROME2, 8 bits unsigned; reversible, .201.
- u12_rpcl: 61 columns x 47 rows MONOCHROME2, BitsStored 12 in 16 unsigned (codestream precision
  12); reversible, RPCL progression with TLM markers, .202 (HTJ2K with RPCL Options).
- rgb8_rct: 40x32, 8 bits, reversible color transform, YBR_RCT; .201.
- ct_s16_lossy: the ct_s16 image, irreversible 9/7 wavelet, .203 (HTJ2K), MONOCHROME2.
- rgb8_ict: the rgb8_rct image, irreversible with the irreversible color transform, YBR_ICT; .203.

With --bench DIR, also writes DIR/bench_512_htj2k.dcm and DIR/bench_512_j2k.dcm: the same
512x512 CT-like slice as HTJ2K lossless (.201) and as JPEG 2000 lossless (.90, encoded by
pylibjpeg-openjpeg), for the ignored timing test (RADSTREAM_HTJ2K_BENCH_DIR=DIR). They are too
large to commit.
"""

import argparse
import ctypes
import os
import sys

import numpy as np
import ojph
import pydicom
from ojph.ojph_bindings import Codestream, MemOutfile, Point
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import HTJ2K, HTJ2KLossless, HTJ2KLosslessRPCL, JPEG2000Lossless, generate_uid

HERE = os.path.dirname(os.path.abspath(__file__))
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def htj2k(image, bits, *, reversible=True, qstep=None, color_transform=False, progression="LRCP"):
    """An HTJ2K codestream of `image` (rows x columns, or rows x columns x 3) with `bits` of
    precision, signed when the array's type is. The lines are pushed by hand because ojph's
    `push_all_components` feeds the components one after the other, which is wrong for the
    interleaved line order OpenJPH asks for when a color transform is on."""
    height, width = image.shape[:2]
    components = 1 if image.ndim == 2 else image.shape[2]
    signed = image.dtype.kind == "i"
    codestream = Codestream()
    siz = codestream.access_siz()
    siz.set_image_extent(Point(width, height))
    siz.set_num_components(components)
    for c in range(components):
        siz.set_component(c, Point(1, 1), bits, signed)
    cod = codestream.access_cod()
    cod.set_progression_order(progression)
    cod.set_reversible(reversible)
    cod.set_color_transform(color_transform)
    if not reversible and qstep is not None:
        codestream.access_qcd().set_irrev_quant(qstep)
    codestream.set_planar(False)
    codestream.request_tlm_marker(progression == "RPCL")
    codestream.set_tilepart_divisions(progression == "RPCL", False)
    out = MemOutfile()
    out.open(65536, False)
    codestream.write_headers(out, None, 0)
    planes = image.reshape(height, width, components).astype(np.int32)
    line = codestream.exchange(None, 0)
    for y in range(height):
        for c in range(components):
            row = np.ascontiguousarray(planes[y, :, c])
            assert line.size == width, (line.size, width)
            ctypes.memmove(line.i32_address, row.ctypes.data, width * 4)
            line = codestream.exchange(line, (c + 1) % components)
    codestream.flush()
    data = bytes(out.get_data())
    codestream.close()
    out.close()
    return data


def ct_phantom(size, seed):
    """A CT-like slice: air, an elliptic body of soft tissue with two lungs, a bone ring, a
    metal spot clamped at 3071, and noise; int16 in -1024..3071."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) / (size - 1) * 2 - 1
    image = np.full((size, size), -1000.0)
    body = (x / 0.85) ** 2 + (y / 0.65) ** 2
    image[body < 1] = 40 + 30 * x[body < 1]
    image[(body < 0.92) & (body > 0.78)] = 1200
    for cx in (-0.4, 0.4):
        image[((x - cx) / 0.28) ** 2 + (y / 0.4) ** 2 < 1] = -850
    image[(x - 0.1) ** 2 + (y + 0.3) ** 2 < 0.003] = 4000
    image += rng.integers(-4, 5, size=image.shape)
    image = np.clip(np.round(image), -1024, 3071).astype(np.int16)
    image[0, 0], image[-1, -1] = -1024, 3071
    return image


def gradient(width, height, maximum, seed):
    """A diagonal ramp with a brighter rectangle and a little noise, in 0..maximum."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = x * maximum // (2 * (width - 1)) + y * maximum // (2 * (height - 1))
    image[height // 3:2 * height // 3, width // 4:width // 2] += maximum // 5
    image += rng.integers(-2, 3, size=image.shape)
    image = np.clip(image, 0, maximum)
    image[0, 0], image[-1, -1] = 0, maximum
    return image


def rgb_image(width, height, seed):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), 255 - (x + y) * 255 // (width + height - 2)],
                     axis=-1)
    image[4:12, 6:20] = (250, 20, 30)
    image = np.clip(image + rng.integers(-2, 3, size=image.shape), 0, 255)
    return image.astype(np.uint8)


def part10(image, codestream, syntax, photometric, bits_stored, lossy):
    """A Secondary Capture object with `codestream` as its one encapsulated frame."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = SECONDARY_CAPTURE, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.ConversionType = "OT", "WSD"
    ds.Rows, ds.Columns = image.shape[:2]
    ds.SamplesPerPixel = 1 if image.ndim == 2 else 3
    if ds.SamplesPerPixel == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = image.dtype.itemsize * 8
    ds.BitsStored, ds.HighBit = bits_stored, bits_stored - 1
    ds.PixelRepresentation = int(image.dtype.kind == "i")
    if lossy:
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionRatio = f"{image.nbytes / len(codestream):.2f}"
        ds.LossyImageCompressionMethod = "ISO_15444_15"
    ds.PixelData = encapsulate([codestream])
    ds["PixelData"].VR = "OB"
    return ds


def reference_decode(path):
    """pydicom + pylibjpeg-openjpeg's decode of a fixture, as stored values."""
    ds = pydicom.dcmread(path)
    return ds.pixel_array


def check_high_throughput(name, codestream):
    """Stops unless the main header has a CAP marker (0xFF50) and the COD code-block style says
    HT (0x40), so that a fixture cannot silently be plain JPEG 2000."""
    position, markers = 2, {}
    while codestream[position:position + 2] != b"\xff\x90":
        marker = int.from_bytes(codestream[position:position + 2], "big")
        length = int.from_bytes(codestream[position + 2:position + 4], "big")
        markers[marker] = codestream[position + 4:position + 2 + length]
        position += 2 + length
    if 0xFF50 not in markers or not markers[0xFF52][8] & 0x40:
        sys.exit(f"{name}: the codestream is not HTJ2K (no CAP marker or no HT code-block style)")


def write_case(name, image, bits_stored, syntax, photometric, **encode):
    lossy = not encode.get("reversible", True)
    codestream = htj2k(image, bits_stored, **encode)
    check_high_throughput(name, codestream)
    path = os.path.join(HERE, f"htj2k_{name}.dcm")
    part10(image, codestream, syntax, photometric, bits_stored, lossy).save_as(path, enforce_file_format=True)
    if not lossy:
        image.astype(image.dtype.newbyteorder("<")).tofile(os.path.join(HERE, f"htj2k_{name}.raw"))
    decoded = reference_decode(path)
    if decoded.shape != image.shape:
        sys.exit(f"{name}: pylibjpeg-openjpeg decoded shape {decoded.shape}, expected {image.shape}")
    error = int(np.abs(decoded.astype(np.int64) - image.astype(np.int64)).max())
    if lossy:
        decoded.astype(image.dtype.newbyteorder("<")).tofile(os.path.join(HERE, f"htj2k_{name}.openjpeg.raw"))
    elif error:
        sys.exit(f"{name}: lossless, but pylibjpeg-openjpeg's decode differs from the original by up to {error}")
    print(f"{name}: {os.path.getsize(path)} bytes, codestream {len(codestream)}, "
          f"max |openjpeg - original| = {error}")


def write_bench(folder):
    os.makedirs(folder, exist_ok=True)
    image = ct_phantom(512, 3)
    htj2k_path = os.path.join(folder, "bench_512_htj2k.dcm")
    ds = part10(image, htj2k(image, 16), HTJ2KLossless, "MONOCHROME2", 16, False)
    ds.save_as(htj2k_path, enforce_file_format=True)
    # The same object made native, then compressed as JPEG 2000 by pylibjpeg-openjpeg.
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.PixelData = image.astype("<i2").tobytes()
    ds["PixelData"].VR = "OW"
    ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
    j2k_path = os.path.join(folder, "bench_512_j2k.dcm")
    ds.save_as(j2k_path, enforce_file_format=True)
    for path in (htj2k_path, j2k_path):
        if not np.array_equal(reference_decode(path), image):
            sys.exit(f"{path}: pylibjpeg-openjpeg's decode is not the original")
        print(f"{path}: {os.path.getsize(path)} bytes")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", metavar="DIR", help="also write the 512x512 timing objects into DIR")
    args = parser.parse_args()
    print(f"ojph {ojph.__version__}, pydicom {pydicom.__version__}")
    ct = ct_phantom(128, 1)
    rgb = rgb_image(40, 32, 5)
    write_case("ct_s16", ct, 16, HTJ2KLossless, "MONOCHROME2")
    write_case("u8", gradient(64, 48, 255, 2).astype(np.uint8), 8, HTJ2KLossless, "MONOCHROME2")
    write_case("u12_rpcl", gradient(61, 47, 4095, 4).astype(np.uint16), 12, HTJ2KLosslessRPCL, "MONOCHROME2",
               progression="RPCL")
    write_case("rgb8_rct", rgb, 8, HTJ2KLossless, "YBR_RCT", color_transform=True)
    write_case("ct_s16_lossy", ct, 16, HTJ2K, "MONOCHROME2", reversible=False, qstep=0.0005)
    write_case("rgb8_ict", rgb, 8, HTJ2K, "YBR_ICT", reversible=False, qstep=0.02, color_transform=True)
    if args.bench:
        write_bench(args.bench)


if __name__ == "__main__":
    main()

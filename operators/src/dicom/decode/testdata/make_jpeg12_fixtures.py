#!/usr/bin/env python3
"""Makes the jpeg12_* fixtures of jpeg12.rs's tests from synthetic images (no patient data).

Run from this folder: python3 make_jpeg12_fixtures.py
Needs numpy, pydicom, pylibjpeg-libjpeg (the reference decoder) and dcmtk's dcmcjpeg (the
reference encoder of the DICOM fixture). The other streams come from the small encoder below,
which writes what dcmcjpeg cannot be asked for: restart intervals, 16-bit quantization tables,
odd sizes, subsampled color in one non-interleaved and one interleaved scan.

Writes:
- jpeg12_dcmtk_2frames.dcm: 2 frames of 64x64 MONOCHROME2, BitsStored 12, `dcmcjpeg +ee`;
  jpeg12_dcmtk_2frames.libjpeg.raw: pydicom + pylibjpeg-libjpeg's decode (u16 little endian).
- jpeg12_restart.jpg: 61 wide x 47 high, one component, 12 bits, DRI 3, APP1 and COM segments;
  jpeg12_restart.libjpeg.raw: pylibjpeg-libjpeg's decode.
- jpeg12_color.jpg: 40 wide x 36 high, 12 bits, Y 2x2, Cb and Cr 1x1, scans Y then Cb+Cr with
  DRI 2 before the second; jpeg12_color.libjpeg.raw: pylibjpeg-libjpeg's decode without color
  transform (Y Cb Cr interleaved).

The images are those of `synthetic` in jpeg12.rs's tests: keep the two in step.
"""

import math
import os
import subprocess
import tempfile

import libjpeg
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ZIGZAG = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61,
    54, 47, 55, 62, 63,
]
# T.81 Annex K tables (natural order).
LUMINANCE = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29,
    51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92, 49, 64, 78, 87, 103, 121,
    120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]
CHROMINANCE = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
]


def synthetic(width, height, seed):
    """A 12-bit gradient with a bright rectangle and LCG noise in [-64, 63] (rows of columns)."""
    state = seed
    image = np.zeros((height, width), dtype=np.int64)
    for y in range(height):
        for x in range(width):
            state = (state * 1103515245 + 12345) & 0x7FFFFFFF
            noise = ((state >> 16) & 127) - 64
            value = 400 + x * 2800 // max(width - 1, 1) + y * 600 // max(height - 1, 1) + noise
            if width // 4 <= x < width // 2 and height // 3 <= y < 2 * height // 3:
                value += 500
            image[y, x] = min(max(value, 0), 4095)
    return image


def category(value):
    return 0 if value == 0 else int(abs(value)).bit_length()


def huffman_table(frequencies):
    """Code lengths of an optimal table limited to 16 bits (T.81 K.2): (BITS, HUFFVAL)."""
    freq = [0] * 257
    for symbol, count in frequencies.items():
        freq[symbol] = count
    freq[256] = 1  # reserves the all-ones code
    size, others = [0] * 257, [-1] * 257
    while True:
        live = [i for i in range(257) if freq[i] > 0]
        if len(live) < 2:
            break
        v1 = min(live, key=lambda i: (freq[i], -i))
        v2 = min((i for i in live if i != v1), key=lambda i: (freq[i], -i))
        freq[v1] += freq[v2]
        freq[v2] = 0
        size[v1] += 1
        while others[v1] != -1:
            v1 = others[v1]
            size[v1] += 1
        others[v1] = v2
        size[v2] += 1
        while others[v2] != -1:
            v2 = others[v2]
            size[v2] += 1
    bits = [0] * 33
    for i in range(257):
        if size[i]:
            bits[size[i]] += 1
    for i in range(32, 16, -1):
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
    i = 16
    while bits[i] == 0:
        i -= 1
    bits[i] -= 1
    values = sorted((s for s in range(256) if size[s]), key=lambda s: (size[s], s))
    return bits[1:17], values


def canonical_codes(bits, values):
    codes, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            codes[values[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return codes


class BitWriter:
    def __init__(self):
        self.out, self.acc, self.count = bytearray(), 0, 0

    def write(self, value, length):
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.count += 1
            if self.count == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)
                self.acc, self.count = 0, 0

    def flush(self):
        while self.count:
            self.write(1, 1)


def blocks_of(plane, blocks_wide, blocks_high, quant, precision):
    """Quantized DCT blocks in zigzag order of a plane padded by edge replication."""
    padded = np.pad(plane, ((0, blocks_high * 8 - plane.shape[0]), (0, blocks_wide * 8 - plane.shape[1])), "edge")
    basis = np.array([[(math.sqrt(0.5) if u == 0 else 1) / 2 * math.cos((2 * x + 1) * u * math.pi / 16)
                       for x in range(8)] for u in range(8)])
    out = {}
    for by in range(blocks_high):
        for bx in range(blocks_wide):
            block = padded[by * 8:by * 8 + 8, bx * 8:bx * 8 + 8] - (1 << (precision - 1))
            coefs = (basis @ block @ basis.T).reshape(64)
            out[(bx, by)] = [int(round(coefs[ZIGZAG[k]] / quant[ZIGZAG[k]])) for k in range(64)]
    return out


def encode(size, planes, sampling, precision, scans, quant_tables, extra_segments=b""):
    """A sequential Huffman JPEG (SOF1) of size (width, height). planes: one 2-D array a
    component, already subsampled; sampling: (H, V) a component; scans: [(component indexes,
    restart interval)]."""
    width, height = size
    h_max, v_max = max(h for h, _ in sampling), max(v for _, v in sampling)
    mcus_wide, mcus_high = -(-width // (8 * h_max)), -(-height // (8 * v_max))
    blocks = [blocks_of(p, mcus_wide * h, mcus_high * v, quant_tables[min(i, 1)], precision)
              for i, (p, (h, v)) in enumerate(zip(planes, sampling))]

    out = bytearray(b"\xff\xd8") + extra_segments
    dqt = bytearray()
    for i, table in enumerate(quant_tables):
        dqt += bytes([0x10 | i]) + b"".join(table[ZIGZAG[k]].to_bytes(2, "big") for k in range(64))
    out += b"\xff\xdb" + (len(dqt) + 2).to_bytes(2, "big") + dqt
    sof = bytes([precision]) + height.to_bytes(2, "big") + width.to_bytes(2, "big") + bytes([len(planes)])
    for i, (h, v) in enumerate(sampling):
        sof += bytes([i + 1, (h << 4) | v, min(i, 1)])
    out += b"\xff\xc1" + (len(sof) + 2).to_bytes(2, "big") + sof

    for scan_number, (components, restart) in enumerate(scans):
        interleaved = len(components) > 1
        if interleaved:
            units = [[(c, mx * sampling[c][0] + bx, my * sampling[c][1] + by)
                      for c in components for by in range(sampling[c][1]) for bx in range(sampling[c][0])]
                     for my in range(mcus_high) for mx in range(mcus_wide)]
        else:
            c = components[0]
            h, v = sampling[c]
            wide = -(-(-(-width * h // h_max)) // 8)
            high = -(-(-(-height * v // v_max)) // 8)
            units = [[(c, bx, by)] for by in range(high) for bx in range(wide)]
        # Two passes: symbol statistics, then the bits with the optimal tables.
        symbols = []
        predictions = {}
        for number, unit in enumerate(units):
            if restart and number and number % restart == 0:
                symbols.append(("restart",))
                predictions = {}
            for c, bx, by in unit:
                block = blocks[c][(bx, by)]
                diff = block[0] - predictions.get(c, 0)
                predictions[c] = block[0]
                symbols.append(("dc", c, category(diff), diff))
                run = 0
                last = max([k for k in range(1, 64) if block[k]] or [0])
                for k in range(1, last + 1):
                    if block[k] == 0:
                        run += 1
                        continue
                    while run > 15:
                        symbols.append(("ac", c, 0xF0, 0))
                        run -= 16
                    symbols.append(("ac", c, (run << 4) | category(block[k]), block[k]))
                    run = 0
                if last < 63:
                    symbols.append(("ac", c, 0x00, 0))
        tables = {}
        for entry in symbols:
            if entry[0] != "restart":
                kind, c, symbol = entry[0], entry[1], entry[2]
                tables.setdefault((kind, c), {}).setdefault(symbol, 0)
                tables[(kind, c)][symbol] += 1
        dht = bytearray()
        codes = {}
        for slot, c in enumerate(components):
            for kind, tc in (("dc", 0), ("ac", 1)):
                bits, values = huffman_table(tables.get((kind, c), {0: 1}))
                dht += bytes([(tc << 4) | slot]) + bytes(bits) + bytes(values)
                codes[(kind, c)] = canonical_codes(bits, values)
        out += b"\xff\xc4" + (len(dht) + 2).to_bytes(2, "big") + dht
        if restart:
            out += b"\xff\xdd\x00\x04" + restart.to_bytes(2, "big")
        sos = bytes([len(components)])
        for slot, c in enumerate(components):
            sos += bytes([c + 1, (slot << 4) | slot])
        sos += b"\x00\x3f\x00"
        out += b"\xff\xda" + (len(sos) + 2).to_bytes(2, "big") + sos
        writer, marker = BitWriter(), 0
        for entry in symbols:
            if entry[0] == "restart":
                writer.flush()
                writer.out += bytes([0xFF, 0xD0 + marker % 8])
                marker += 1
                continue
            kind, c, symbol, value = entry
            code, length = codes[(kind, c)][symbol]
            writer.write(code, length)
            size = symbol & 0x0F if kind == "ac" else symbol
            if size:
                writer.write(value if value > 0 else value + (1 << size) - 1, size)
        writer.flush()
        out += writer.out
    out += b"\xff\xd9"
    return bytes(out)


def write_restart():
    image = synthetic(61, 47, 7)
    quant = [[max(1, q // 2) for q in LUMINANCE]]
    extra = b"\xff\xe1\x00\x07synth" + b"\xff\xfe\x00\x0bsynthetic"
    stream = encode((61, 47), [image], [(1, 1)], 12, [([0], 3)], quant, extra)
    open("jpeg12_restart.jpg", "wb").write(stream)
    decoded = libjpeg.decode(stream)
    assert decoded.shape == (47, 61), decoded.shape
    decoded.astype("<u2").tofile("jpeg12_restart.libjpeg.raw")
    print("restart: max |libjpeg - original|", np.abs(decoded.astype(np.int64) - image).max())


def write_color():
    y = synthetic(40, 36, 11)
    cb = synthetic(20, 18, 13) // 2 + 1024
    cr = 4095 - synthetic(20, 18, 17) // 2 - 1024
    # Chroma tables with steps above 255 need the 16-bit precision of DQT.
    quant = [[max(1, q // 2) for q in LUMINANCE], [q * 4 for q in CHROMINANCE]]
    stream = encode((40, 36), [y, cb, cr], [(2, 2), (1, 1), (1, 1)], 12, [([0], 0), ([1, 2], 2)], quant)
    open("jpeg12_color.jpg", "wb").write(stream)
    decoded = libjpeg.decode(stream, colour_transform=0)
    assert decoded.shape == (36, 40, 3), decoded.shape
    decoded.astype("<u2").tofile("jpeg12_color.libjpeg.raw")
    print("color: max |libjpeg Y - original|", np.abs(decoded[:, :, 0].astype(np.int64) - y).max())


def write_dcmtk():
    # dcmcjpeg shifts the stored values down by their minimum unless they span the whole range.
    frames = [synthetic(64, 64, 1), synthetic(64, 64, 2)[:, ::-1]]
    frames[0][0, 0], frames[1][63, 63] = 0, 4095
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "OT"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 64, 64, 2
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.stack(frames).astype("<u2").tobytes()
    with tempfile.TemporaryDirectory() as tmp:
        native = os.path.join(tmp, "native.dcm")
        ds.save_as(native, enforce_file_format=True)
        subprocess.run(["dcmcjpeg", "+ee", native, "jpeg12_dcmtk_2frames.dcm"], check=True)
    ds = pydicom.dcmread("jpeg12_dcmtk_2frames.dcm")
    assert str(ds.file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.4.51"
    decoded = ds.pixel_array
    decoded.astype("<u2").tofile("jpeg12_dcmtk_2frames.libjpeg.raw")
    print("dcmtk: max |libjpeg - original|", np.abs(decoded.astype(np.int64) - np.stack(frames)).max())


if __name__ == "__main__":
    write_restart()
    write_color()
    write_dcmtk()

"""Makes the small real codec streams the decoder-bomb tests patch (decode/tests/bombs.rs).

Each is a 16 x 16 image encoded by a third-party encoder; the tests patch its own header to
declare another size and check that the decoder refuses it before decoding.

* bomb_baseline_u8.jpg: JPEG baseline (Pillow / libjpeg), 8-bit grayscale.
* bomb_lossless_u16.jpg: JPEG lossless SV1, 16 bits allocated, 12 stored (dcmtk's dcmcjpeg +e1).
* bomb_jpegls_u16.jls: JPEG-LS lossless, 16 bits allocated, 12 stored (dcmtk's dcmcjpls).

Run from this folder: python3 make_bomb_fixtures.py (needs Pillow, numpy, pydicom, dcmtk).
"""

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

HERE = Path(__file__).parent
ramp8 = (np.add.outer(np.arange(16), np.arange(16)) * 8).astype(np.uint8)
ramp12 = (np.add.outer(np.arange(16), np.arange(16)) * 130).astype(np.uint16)

Image.fromarray(ramp8, "L").save(HERE / "bomb_baseline_u8.jpg", quality=90)


def native(pixels: np.ndarray) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = "OT"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.tobytes()
    return ds


with tempfile.TemporaryDirectory() as tmp:
    source = Path(tmp) / "native.dcm"
    native(ramp12).save_as(source, enforce_file_format=True)
    for tool, args, out in [
        ("dcmcjpeg", ["+e1"], "bomb_lossless_u16.jpg"),
        ("dcmcjpls", ["+el"], "bomb_jpegls_u16.jls"),
    ]:
        encoded = Path(tmp) / out
        subprocess.run([tool, *args, str(source), str(encoded)], check=True)
        ds = pydicom.dcmread(encoded)
        frames = list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
        (HERE / out).write_bytes(frames[0].rstrip(b"\0") if frames[0].endswith(b"\xff\xd9\0") else frames[0])

#!/usr/bin/env python3
"""Writes the de-identification benchmark's inputs: synthetic CT instances with fake PHI.

usage: make_inputs.py OUT_DIR [--count N] [--sets ct,private] [--seed S] [--per-series M]

Two sets, each in its own folder under OUT_DIR:

  ct/       N CT Image Storage instances, explicit VR little endian, 512x512 16-bit native pixel
            data (512 KiB), a header of about 200 elements as a CT scanner writes it: patient,
            study, series, frame of reference, equipment, acquisition, CT image and SOP common
            modules, a few sequences (ProcedureCodeSequence, ReferencedImageSequence,
            SourceImageSequence, RequestAttributesSequence, ...) and a private block of 20
            elements under one private creator.
  private/  the same, plus about 4,000 private elements: 8 odd groups, 2 private creators each,
            mixed VRs (strings, numbers, binary, UN, dates, UIDs), and two private sequences.

Every value that names a person, place or device is synthetic (SYNTH^PATIENT^0007 and the like).
All instances of a set share one study; series hold --per-series instances; every instance has
its own SOP Instance UID. The output is a function of --seed and the other arguments only, so
two runs write byte-identical files. Needs pydicom (3.x); numpy is not needed.
"""

import argparse
import hashlib
import io
import random
import sys
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
ROWS = COLUMNS = 512
IMPLEMENTATION_CLASS_UID = "2.25.118111683111621146520171029893105120461"


def uid(seed, *parts):
    """A UID derived from the seed and parts (2.25 form, as UUID-derived UIDs): reproducible."""
    digest = hashlib.sha256("\0".join(map(str, (seed, *parts))).encode()).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def code(value, scheme, meaning):
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def image_ref(sop_instance_uid):
    item = Dataset()
    item.ReferencedSOPClassUID = CT_IMAGE_STORAGE
    item.ReferencedSOPInstanceUID = sop_instance_uid
    return item


def patient_study(ds, seed, patient_no):
    """Patient, general study and patient study modules, with fake PHI."""
    rng = random.Random(f"{seed}-patient")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = f"SYNTH^PATIENT^{patient_no:04d}"
    ds.PatientID = f"SYN{patient_no:07d}"
    ds.IssuerOfPatientID = "SYNTH HOSPITAL MRN"
    ds.TypeOfPatientID = "TEXT"
    ds.PatientBirthDate = f"19{rng.randint(30, 99)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    ds.PatientBirthTime = "081500"
    ds.PatientSex = rng.choice(["F", "M"])
    ds.PatientAge = f"{rng.randint(20, 90):03d}Y"
    ds.PatientSize = f"{rng.uniform(1.5, 1.95):.2f}"
    ds.PatientWeight = f"{rng.uniform(50, 110):.1f}"
    ds.PatientAddress = f"{patient_no} SYNTHETIC STREET^^FAKETOWN^^00000"
    ds.PatientTelephoneNumbers = "555-0100"
    ds.PatientMotherBirthName = f"SYNTH^MOTHER^{patient_no:04d}"
    ds.OtherPatientIDs = f"OTHER{patient_no:06d}"
    other = Dataset()
    other.PatientID = f"ALT{patient_no:07d}"
    other.IssuerOfPatientID = "SYNTH REGIONAL ID"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.OtherPatientNames = f"SYNTH^ALIAS^{patient_no:04d}"
    ds.EthnicGroup = "SYNTHETIC"
    ds.Occupation = "SYNTH OCCUPATION"
    ds.AdditionalPatientHistory = "Synthetic history: no known allergies."
    ds.PatientComments = "Synthetic patient for benchmarks."
    ds.MedicalAlerts = "NONE"
    ds.Allergies = "NONE"
    ds.SmokingStatus = "NO"
    ds.PregnancyStatus = 4
    ds.PatientIdentityRemoved = "NO"

    ds.StudyDate = "20260314"
    ds.StudyTime = "101500.000000"
    ds.AccessionNumber = f"ACC{patient_no:08d}"
    issuer = Dataset()
    issuer.LocalNamespaceEntityID = "SYNTH RIS"
    ds.IssuerOfAccessionNumberSequence = Sequence([issuer])
    ds.ReferringPhysicianName = "SYNTH^REFERRER^DR"
    ds.ReferringPhysicianAddress = "1 FAKE CLINIC ROAD^^FAKETOWN"
    ds.ReferringPhysicianTelephoneNumbers = "555-0111"
    ref_phys = Dataset()
    ref_phys.PersonIdentificationCodeSequence = Sequence([code("R1234", "L", "SYNTH^REFERRER^DR")])
    ref_phys.InstitutionName = "SYNTH HOSPITAL"
    ds.ReferringPhysicianIdentificationSequence = Sequence([ref_phys])
    ds.StudyDescription = "CT CHEST ABDOMEN PELVIS WITH CONTRAST"
    ds.ProcedureCodeSequence = Sequence([code("CTCAP", "L", "CT chest abdomen pelvis with contrast")])
    ds.PhysiciansOfRecord = "SYNTH^ATTENDING^DR"
    ds.NameOfPhysiciansReadingStudy = "SYNTH^RADIOLOGIST^DR"
    ds.StudyID = f"S{patient_no:05d}"
    ds.RequestingPhysician = "SYNTH^REQUESTER^DR"
    ds.RequestingService = "SYNTH ONCOLOGY"
    ds.RequestedProcedureDescription = "CT CAP W"
    ds.AdmittingDiagnosesDescription = "Synthetic diagnosis"
    ds.AdmissionID = f"ADM{patient_no:06d}"
    ds.CurrentPatientLocation = "WARD 7 BED 3"
    ds.StudyInstanceUID = uid(seed, "study")
    ds.ReferencedStudySequence = Sequence([_ref_study(seed)])


def _ref_study(seed):
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management
    item.ReferencedSOPInstanceUID = uid(seed, "ref-study")
    return item


def series_equipment(ds, seed):
    """General series, frame of reference, general equipment and CT image modules."""
    ds.Modality = "CT"
    ds.SeriesDate = "20260314"
    ds.SeriesTime = "101712.000000"
    ds.SeriesDescription = "AXIAL 1.0 CE"
    ds.PerformingPhysicianName = "SYNTH^TECHNOLOGIST"
    ds.OperatorsName = "SYNTH^OPERATOR"
    ds.ProtocolName = "CAP ROUTINE CONTRAST"
    ds.BodyPartExamined = "CHEST"
    ds.PatientPosition = "FFS"
    ds.PerformedProcedureStepStartDate = "20260314"
    ds.PerformedProcedureStepStartTime = "101500"
    ds.PerformedProcedureStepID = "PPS0001"
    ds.PerformedProcedureStepDescription = "CT CAP W"
    ds.PerformedProtocolCodeSequence = Sequence([code("CAP01", "L", "CAP routine")])
    request = Dataset()
    request.RequestedProcedureID = "RP0001"
    request.ScheduledProcedureStepID = "SPS0001"
    request.ScheduledProcedureStepDescription = "CT CAP W"
    request.ScheduledProtocolCodeSequence = Sequence([code("CAP01", "L", "CAP routine")])
    request.AccessionNumber = ds.AccessionNumber
    ds.RequestAttributesSequence = Sequence([request])
    pps = Dataset()
    pps.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.3"  # MPPS
    pps.ReferencedSOPInstanceUID = uid(seed, "mpps")
    ds.ReferencedPerformedProcedureStepSequence = Sequence([pps])
    ds.FrameOfReferenceUID = uid(seed, "frame")
    ds.PositionReferenceIndicator = "XY"
    ds.SynchronizationFrameOfReferenceUID = uid(seed, "sync")

    ds.Manufacturer = "SYNTH MEDICAL SYSTEMS"
    ds.InstitutionName = "SYNTH HOSPITAL"
    ds.InstitutionAddress = "1 FAKE HOSPITAL WAY^^FAKETOWN^^00000"
    ds.StationName = "SYNCT01"
    ds.InstitutionalDepartmentName = "RADIOLOGY"
    ds.InstitutionCodeSequence = Sequence([code("SYN001", "L", "SYNTH HOSPITAL")])
    ds.ManufacturerModelName = "SYNTH CT 128"
    ds.DeviceSerialNumber = "SN-000123"
    ds.SoftwareVersions = ["SYN_CT_3.1", "RECON_2.0"]
    ds.DateOfLastCalibration = "20260301"
    ds.TimeOfLastCalibration = "070000"
    ds.DeviceUID = uid(seed, "device")
    ds.GantryID = "GANTRY-01"

    ds.ScanOptions = "HELICAL MODE"
    ds.KVP = "120"
    ds.DataCollectionDiameter = "500"
    ds.ReconstructionDiameter = "380"
    ds.DistanceSourceToDetector = "1085.6"
    ds.DistanceSourceToPatient = "595"
    ds.GantryDetectorTilt = "0"
    ds.TableHeight = "145"
    ds.RotationDirection = "CW"
    ds.ExposureTime = "500"
    ds.XRayTubeCurrent = 245
    ds.Exposure = 122
    ds.FilterType = "BODY FILTER"
    ds.GeneratorPower = 29
    ds.FocalSpots = "1.2"
    ds.ConvolutionKernel = "STANDARD"
    ds.RevolutionTime = 0.5
    ds.SingleCollimationWidth = 0.625
    ds.TotalCollimationWidth = 40.0
    ds.TableSpeed = 78.75
    ds.TableFeedPerRotation = 39.375
    ds.SpiralPitchFactor = 0.984375
    ds.CTDIvol = 11.4
    ds.CTDIPhantomTypeCodeSequence = Sequence([code("113691", "DCM", "IEC Body Dosimetry Phantom")])
    ds.ExposureModulationType = "ANGULAR"
    ds.EstimatedDoseSaving = 23.5
    ds.DataCollectionCenterPatient = [0.0, -145.0, 0.0]
    ds.ReconstructionTargetCenterPatient = [0.0, -145.0, 0.0]
    ds.ContrastBolusAgent = "SYNTHETIC CONTRAST 350"
    ds.ContrastBolusRoute = "IV"
    ds.ContrastBolusVolume = "90"
    ds.ContrastBolusStartTime = "101630"
    ds.ContrastBolusTotalDose = "31.5"
    ds.ContrastFlowRate = "3"
    ds.ContrastBolusIngredient = "IODINE"
    ds.ContrastBolusIngredientConcentration = "350"
    agent = code("C-B0322", "SRT", "Iohexol")
    ds.ContrastBolusAgentSequence = Sequence([agent])
    ds.AcquisitionType = "SPIRAL"
    ds.ReconstructionAlgorithm = "ITERATIVE"
    ds.ReconstructionFieldOfView = [380.0, 380.0]
    ds.SliceThickness = "1.0"
    ds.SpacingBetweenSlices = "1.0"
    ds.PixelSpacing = ["0.742188", "0.742188"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ROWS
    ds.Columns = COLUMNS
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.PixelPaddingValue = -2000
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    ds.WindowCenter = ["40", "-600"]
    ds.WindowWidth = ["400", "1500"]
    ds.WindowCenterWidthExplanation = ["WINDOW1", "WINDOW2"]
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.AcquisitionNumber = 2
    ds.PatientOrientation = ["L", "P"]
    ds.DerivationDescription = "Reconstructed from raw data on SYNCT01"
    ds.ImageComments = "SYNTH^PATIENT scanned on SYNCT01"
    ds.IrradiationEventUID = uid(seed, "irradiation")
    ds.TimezoneOffsetFromUTC = "+0100"
    ds.InstanceCreatorUID = uid(seed, "creator")
    ds.StorageMediaFileSetUID = uid(seed, "fileset")
    ds.ContentQualification = "PRODUCT"


def ct_private_block(ds):
    """The ~20 private elements a CT vendor typically adds under one creator."""
    block = ds.private_block(0x0019, "SYNTH CT PRIVATE 1.0", create=True)
    block.add_new(0x00, "LO", "SYNTH RECON PARAMS")
    block.add_new(0x01, "DS", "0.625")
    block.add_new(0x02, "IS", "64")
    block.add_new(0x03, "US", 512)
    block.add_new(0x04, "SL", -1024)
    block.add_new(0x05, "FD", [1.5, 2.5, 3.5])
    block.add_new(0x06, "SH", "BODY")
    block.add_new(0x07, "CS", "HELICAL")
    block.add_new(0x08, "LT", "Synthetic scanner log line for SYNTH^PATIENT")
    block.add_new(0x09, "OB", bytes(range(64)))
    block.add_new(0x0A, "UN", b"SYNTHUN\x00" * 4)
    block.add_new(0x0B, "FL", [0.25, 0.5])
    block.add_new(0x0C, "UL", 123456)
    block.add_new(0x0D, "SS", -5)
    block.add_new(0x0E, "DA", "20260314")
    block.add_new(0x0F, "TM", "101712")
    block.add_new(0x10, "UI", "2.25.1234567890")
    block.add_new(0x11, "LO", ["ALPHA", "BETA"])
    block.add_new(0x12, "DS", ["1.0", "2.0", "3.0"])


def heavy_private(ds, seed):
    """About 4,000 private elements: 8 groups x 2 creators x 250, and two private sequences."""
    rng = random.Random(f"{seed}-private")
    vrs = ["LO", "SH", "CS", "DS", "IS", "US", "UL", "SS", "SL", "FL", "FD", "OB", "UN", "LT", "DA", "TM", "UI", "ST"]
    groups = [0x0009, 0x0011, 0x0013, 0x0021, 0x0027, 0x0029, 0x0043, 0x0045]
    for g_index, group in enumerate(groups):
        for c_index in range(2):
            creator = f"SYNTH VENDOR {g_index:02d}/{c_index}"
            block = ds.private_block(group, creator, create=True)
            for offset in range(250):
                vr = vrs[(offset + g_index + c_index) % len(vrs)]
                block.add_new(offset, vr, _private_value(vr, rng, offset))
    # Two private sequences, each with a few items of private and standard attributes.
    for group, creator in ((0x0029, "SYNTH SEQ A"), (0x0043, "SYNTH SEQ B")):
        block = ds.private_block(group, creator, create=True)
        items = []
        for n in range(3):
            item = Dataset()
            inner = item.private_block(group, creator, create=True)
            for offset in range(8):
                vr = vrs[offset % len(vrs)]
                inner.add_new(offset, vr, _private_value(vr, rng, offset))
            item.PatientName = f"SYNTH^NESTED^{n}"
            item.ReferencedSOPInstanceUID = uid(seed, "nested", group, n)
            items.append(item)
        block.add_new(0x10, "SQ", Sequence(items))


def _private_value(vr, rng, offset):
    if vr in ("LO", "SH", "CS"):
        return f"SYNTH VALUE {offset:03d}" if vr != "CS" else f"MODE_{offset % 7}"
    if vr == "DS":
        return f"{rng.uniform(-1000, 1000):.3f}"
    if vr == "IS":
        return str(rng.randint(-100000, 100000))
    if vr in ("US", "UL"):
        return rng.randint(0, 65535)
    if vr in ("SS", "SL"):
        return rng.randint(-32768, 32767)
    if vr in ("FL", "FD"):
        return [rng.uniform(-1, 1) for _ in range(1 + offset % 4)]
    if vr in ("OB", "UN"):
        return rng.randbytes(8 * (1 + offset % 16))
    if vr in ("LT", "ST"):
        return f"Synthetic private text {offset} mentioning SYNTH^PATIENT and SYNCT01."
    if vr == "DA":
        return "20260314"
    if vr == "TM":
        return f"10{offset % 60:02d}00"
    if vr == "UI":
        return f"2.25.{rng.getrandbits(100)}"
    raise ValueError(vr)


def template(seed, heavy):
    ds = Dataset()
    patient_study(ds, seed, patient_no=7)
    series_equipment(ds, seed)
    ct_private_block(ds)
    if heavy:
        heavy_private(ds, seed)
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = "2.25.0"  # each instance overwrites it
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = "RADSTREAM_BENCH"
    meta.SourceApplicationEntityTitle = "SYNCT01"
    ds.file_meta = meta
    return ds


def count_elements(ds):
    n = 0
    for elem in ds:
        n += 1
        if elem.VR == "SQ":
            n += sum(count_elements(item) for item in elem.value)
    return n


def write_set(out, name, count, seed, per_series, heavy):
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    set_seed = f"{seed}-{name}"
    ds = template(set_seed, heavy)
    # Encoded once and read back, the template's elements stay raw (already encoded bytes) and
    # are written as they are: building and encoding 4,000 private elements once per set rather
    # than once per file keeps generation to seconds.
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    ds = dcmread(io.BytesIO(buffer.getvalue()))
    pixels = random.Random(f"{set_seed}-pixels")
    series_uids = {}
    # The instance-specific fields are overwritten on that one dataset.
    for i in range(count):
        series = i // per_series
        if series not in series_uids:
            series_uids[series] = uid(set_seed, "series", series)
        sop = uid(set_seed, "instance", i)
        ds.SeriesInstanceUID = series_uids[series]
        ds.SeriesNumber = series + 2
        ds.SOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.InstanceNumber = i % per_series + 1
        z = -100.0 - (i % per_series)
        ds.ImagePositionPatient = ["-190.0", "-335.0", f"{z:.1f}"]
        ds.SliceLocation = f"{z:.1f}"
        seconds = 12 + i // 2
        ds.ContentDate = ds.AcquisitionDate = "20260314"
        ds.ContentTime = ds.AcquisitionTime = f"1017{seconds % 60:02d}.{i % 100:02d}0000"
        ds.AcquisitionDateTime = f"20260314101{7 + seconds // 60}{seconds % 60:02d}"
        ds.InstanceCreationDate = "20260314"
        ds.InstanceCreationTime = ds.ContentTime
        neighbours = [j for j in (i - 1, i + 1) if 0 <= j < count]
        ds.ReferencedImageSequence = Sequence([image_ref(uid(set_seed, "instance", j)) for j in neighbours])
        ds.SourceImageSequence = Sequence([image_ref(uid(set_seed, "source", i))])
        ds.PixelData = pixels.randbytes(ROWS * COLUMNS * 2)
        ds["PixelData"].VR = "OW"
        ds.save_as(folder / f"{name}-{i:05d}.dcm", enforce_file_format=True)
    return count_elements(ds)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--count", type=int, default=200, help="instances per set (default 200)")
    p.add_argument("--sets", default="ct,private", help="comma-separated: ct, private (default both)")
    p.add_argument("--seed", default="radstream-deid-bench", help="seed (default fixed)")
    p.add_argument("--per-series", type=int, default=100, help="instances per series (default 100)")
    a = p.parse_args()
    for name in a.sets.split(","):
        if name not in ("ct", "private"):
            sys.exit(f"unknown set {name!r} (expected ct or private)")
        elements = write_set(a.out, name, a.count, a.seed, a.per_series, heavy=name == "private")
        print(f"{a.out / name}: {a.count} instances, {elements} data elements each (nested included)",
              file=sys.stderr)


if __name__ == "__main__":
    main()

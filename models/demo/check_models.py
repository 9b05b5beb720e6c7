#!/usr/bin/env python3
"""Scores ct-head-bleed.onnx and ct-head-bleed-3d.onnx on synthetic studies against the lesions `radstream synth` planted.

Requirements: python3 with numpy, `onnxruntime` and `pydicom` from PyPI (`pip install onnxruntime
pydicom`).

A run is a folder holding `lesions.json` (the synth ground truth, `synth::write_ground_truth`) and
`npy/`, the studies preprocessed by `radstream preprocess --model
models/ct-head-bleed.preprocess.toml --out RUN/npy STUDIES` (one `[1, 1, 256, 256]` file per
instance, at `npy/<study uid>/<series uid>/<sop uid>.npy`). `--generate` makes the runs first:

    python3 models/demo/check_models.py --generate --seeds 1-10 --studies 6 --work /tmp/bleed-check

with `--synth` the command that writes a run's studies and ground truth (placeholders {studies},
{seed}, {out}, {truth}). Then every CT slice goes through the model, and the script prints, per
slice group, how many the model flagged (probability >= 0.5) and the extreme probabilities, the
Dice of the mask (> 0.5) with the planted disc on every lesion slice, and the same per study. It
exits 1 when a lesion slice scores below 0.9, a clean head CT slice above 0.1, or a Dice below
0.7.

Then the 3D model (`--model-3d`; `--model-3d ''` skips it), which needs the studies too
(`RUN/studies/<study uid>/<series uid>/<sop uid>.dcm`, as `--generate` writes them): every axial CT
series (not a LOCALIZER, slice normal within 25 degrees of the patient's z axis) is stacked into one
`[1, 1, D, 256, 256]` volume, its `npy/` slices sorted by ImagePositionPatient along the slice
normal (ImageOrientationPatient's row x column), lowest first. It exits 1 unless, on every series,
`slice_probability` and `bleed_mask` equal ct-head-bleed's outputs on the same slices (within 1e-5)
and `bleed_probability` is their maximum, and, on every head CT series, `bleed_probability` is
above 0.5 exactly on the series with a planted lesion and the slices with `slice_probability` >=
0.5 are exactly the planted slices.
"""

import argparse
import json
import pathlib
import shlex
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pydicom

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
SIDE = 256


def seeds(text):
    values = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        values.extend(range(int(low), int(high or low) + 1))
    return values


def generate(args):
    runs = []
    for seed in seeds(args.seeds):
        run = args.work / f"seed-{seed}"
        studies, truth = run / "studies", run / "lesions.json"
        command = args.synth.format(studies=args.studies, seed=seed, out=studies, truth=truth)
        subprocess.run(shlex.split(command), check=True, stdout=subprocess.DEVNULL)
        preprocess = [args.radstream, "preprocess", "--model", str(REPO / "models/ct-head-bleed.preprocess.toml")]
        subprocess.run(preprocess + ["--out", str(run / "npy"), str(studies)], check=True, stdout=subprocess.DEVNULL)
        runs.append(run)
    return runs


def disc_mask(disc, image_side):
    """The planted disc on the model's 256 x 256 grid (pixel centres scaled from the image's)."""
    f = SIDE / image_side
    cc, cr = (disc["centre_column"] + 0.5) * f - 0.5, (disc["centre_row"] + 0.5) * f - 0.5
    rows, columns = np.mgrid[0:SIDE, 0:SIDE]
    return (columns - cc) ** 2 + (rows - cr) ** 2 < (disc["radius"] * f) ** 2


def score_run(session, run, batch):
    truth = json.loads((run / "lesions.json").read_text())
    slices = []  # (group, study uid, probability, dice or None)
    for study in truth["studies"]:
        if study["modality"] != "CT":
            continue
        lesion = study["lesion"] or {"series_instance_uid": None, "instances": []}
        discs = {i["sop_instance_uid"]: i for i in lesion["instances"]}
        files = sorted((run / "npy" / study["study_instance_uid"]).rglob("*.npy"))
        head = study["body_part_examined"] == "HEAD"
        for start in range(0, len(files), batch):
            chunk = files[start : start + batch]
            images = np.concatenate([np.load(f) for f in chunk]).astype(np.float32)
            probability, mask = session.run(["bleed_probability", "bleed_mask"], {"image": images})
            for k, path in enumerate(chunk):
                sop, series = path.stem, path.parent.name
                if sop in discs:
                    planted = disc_mask(discs[sop], truth["image_side"])
                    found = mask[k, 0] > 0.5
                    dice = 2 * np.sum(planted & found) / (np.sum(planted) + np.sum(found))
                    slices.append(("head CT, lesion slice", study["study_instance_uid"], probability[k, 0], dice))
                    continue
                if not head:
                    group = f"{study['body_part_examined'].lower()} CT (not a head model's input)"
                elif series == lesion["series_instance_uid"]:
                    group = "head CT, lesion series, other slice"
                elif lesion["instances"]:
                    group = "head CT, lesion study, localizer"
                else:
                    group = "head CT, clean study"
                slices.append((group, study["study_instance_uid"], probability[k, 0], None))
    studies = {
        s["study_instance_uid"]: (s["body_part_examined"], s["lesion"] is not None)
        for s in truth["studies"]
        if s["modality"] == "CT"
    }
    return slices, studies


def axial_series(series_folder):
    """The series' SOP instance UIDs sorted along the slice normal, or None when it is not an
    axial stack (a localizer, another orientation, or slices with different orientations)."""
    positions, normal = [], None
    for path in series_folder.glob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if "LOCALIZER" in [str(v).upper() for v in ds.get("ImageType", [])]:
            return None
        iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        n = np.cross(iop[:3], iop[3:])
        n /= np.linalg.norm(n)
        if normal is None:
            normal = n
        elif not np.allclose(n, normal, atol=1e-4):
            return None
        position = np.array([float(v) for v in ds.ImagePositionPatient])
        positions.append((float(np.dot(position, n)), str(ds.SOPInstanceUID)))
    if normal is None or abs(normal[2]) < np.cos(np.radians(25)):
        return None
    return [sop for _, sop in sorted(positions)]


def check_3d_run(session_2d, session_3d, run, batch):
    """Every axial CT series of the run through the 3D model: one row per series,
    (group, study uid, series uid, bleed_probability, max |3D - 2D| over slice_probability and
    bleed_mask, |bleed_probability - max slice_probability|, flagged slices == planted slices)."""
    truth = json.loads((run / "lesions.json").read_text())
    rows = []
    for study in truth["studies"]:
        if study["modality"] != "CT":
            continue
        lesion = study["lesion"] or {"series_instance_uid": None, "instances": []}
        planted_sops = {i["sop_instance_uid"] for i in lesion["instances"]}
        head = study["body_part_examined"] == "HEAD"
        for series_folder in sorted((run / "studies" / study["study_instance_uid"]).iterdir()):
            sops = axial_series(series_folder)
            if sops is None:
                continue
            npy = run / "npy" / study["study_instance_uid"] / series_folder.name
            stack = np.concatenate([np.load(npy / f"{sop}.npy") for sop in sops]).astype(np.float32)
            d = stack.shape[0]
            volume = stack.reshape(1, 1, d, SIDE, SIDE)
            bleed, slice_p, mask = session_3d.run(
                ["bleed_probability", "slice_probability", "bleed_mask"], {"volume": volume}
            )
            assert bleed.shape == (1, 1) and slice_p.shape == (1, d) and mask.shape == (1, 1, d, SIDE, SIDE)
            p_2d, mask_2d = [], []
            for start in range(0, d, batch):
                p, m = session_2d.run(["bleed_probability", "bleed_mask"], {"image": stack[start : start + batch]})
                p_2d.append(p[:, 0])
                mask_2d.append(m[:, 0])
            p_2d, mask_2d = np.concatenate(p_2d), np.concatenate(mask_2d)
            diff = max(float(np.abs(slice_p[0] - p_2d).max()), float(np.abs(mask[0, 0] - mask_2d).max()))
            max_diff = abs(float(bleed[0, 0]) - float(slice_p.max()))
            flagged = {sop for sop, p in zip(sops, slice_p[0]) if p >= 0.5}
            planted_here = series_folder.name == lesion["series_instance_uid"]
            expected = planted_sops if planted_here else set()
            if not head:
                group = f"{study['body_part_examined'].lower()} CT series (not a head model's input)"
            elif planted_here:
                group = "head CT series, planted lesion"
            elif lesion["instances"]:
                group = "head CT series, lesion study, other series"
            else:
                group = "head CT series, clean study"
            rows.append(
                (group, study["study_instance_uid"], series_folder.name, d, float(bleed[0, 0]), diff, max_diff,
                 flagged == expected)
            )
    return rows


def report_3d(rows, model_name):
    """Prints the 3D table; returns the failures."""
    print(f"\nmodel {model_name}, {len(rows)} axial CT series, {sum(r[3] for r in rows)} slices\n")
    print(
        f"| {'series':<50} | {'n':>3} | {'slices':>6} | {'flagged':>7} | {'min p':>8} | {'max p':>8} |"
        f" {'slices flagged = planted':>24} |"
    )
    print(f"|{'-' * 52}|{'-' * 5}|{'-' * 8}|{'-' * 9}|{'-' * 10}|{'-' * 10}|{'-' * 26}|")
    groups = sorted({r[0] for r in rows}, key=lambda g: (not g.startswith("head CT series, planted"), g))
    for group in groups:
        rs = [r for r in rows if r[0] == group]
        p = np.array([r[4] for r in rs])
        same = f"{sum(r[7] for r in rs)} of {len(rs)}"
        print(
            f"| {group:<50} | {len(rs):>3} | {sum(r[3] for r in rs):>6} | {int(np.sum(p > 0.5)):>7} |"
            f" {p.min():>8.4f} | {p.max():>8.4f} | {same:>24} |"
        )
    diff = max((r[5] for r in rows), default=0.0)
    max_diff = max((r[6] for r in rows), default=0.0)
    print(f"\nslice_probability and bleed_mask vs ct-head-bleed on the same slices: max |difference| {diff:.2e}")
    print(f"bleed_probability vs max(slice_probability): max |difference| {max_diff:.2e}")

    failures = []
    if diff > 1e-5:
        failures.append(f"3D: the 3D model differs from ct-head-bleed by {diff:.2e} > 1e-5")
    if max_diff > 1e-6:
        failures.append(f"3D: bleed_probability differs from max(slice_probability) by {max_diff:.2e}")
    for group, study, series, _, p, _, _, same in rows:
        if not group.startswith("head CT"):
            continue
        planted = group == "head CT series, planted lesion"
        if planted != (p > 0.5):
            failures.append(f"3D: series {series} ({group}) has bleed_probability {p:.4f}")
        if not same:
            failures.append(f"3D: series {series} ({group}): the slices flagged are not the planted slices")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="*", type=pathlib.Path, help="run folders (lesions.json and npy/)")
    parser.add_argument("--model", type=pathlib.Path, default=HERE / "ct-head-bleed.onnx")
    parser.add_argument(
        "--model-3d", default=str(HERE / "ct-head-bleed-3d.onnx"), help="the whole-series model ('' skips it)"
    )
    parser.add_argument("--generate", action="store_true", help="make the runs first, under --work")
    parser.add_argument("--seeds", default="1-10", help="seeds to generate, e.g. 1-10 or 1,5,9")
    parser.add_argument("--studies", type=int, default=6, help="studies per generated run")
    parser.add_argument("--work", type=pathlib.Path, default=pathlib.Path("/tmp/radstream-bleed-check"))
    parser.add_argument("--radstream", default=str(REPO / "target/debug/radstream"))
    parser.add_argument(
        "--synth",
        default=str(REPO / "target/debug/radstream")
        + " synth --studies {studies} --seed {seed} --out {out} --ground-truth {truth}",
        help="command writing a run's studies and ground truth",
    )
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    runs = list(args.runs) + (generate(args) if args.generate else [])
    if not runs:
        parser.error("give run folders or --generate")

    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    slices, studies = [], {}
    for run in runs:
        run_slices, run_studies = score_run(session, run, args.batch)
        slices += run_slices
        studies.update(run_studies)

    print(f"model {args.model.name}, {len(runs)} runs, {len(slices)} CT slices, {len(studies)} CT studies\n")
    print(f"| {'slices':<45} | {'n':>4} | {'flagged':>7} | {'min p':>8} | {'max p':>8} |")
    print(f"|{'-' * 47}|{'-' * 6}|{'-' * 9}|{'-' * 10}|{'-' * 10}|")
    groups = sorted({s[0] for s in slices}, key=lambda g: (not g.startswith("head CT, lesion slice"), g))
    for group in groups:
        p = np.array([s[2] for s in slices if s[0] == group])
        print(f"| {group:<45} | {len(p):>4} | {int(np.sum(p >= 0.5)):>7} | {p.min():>8.4f} | {p.max():>8.4f} |")

    dice = np.array([s[3] for s in slices if s[3] is not None])
    if len(dice):
        print(f"\nmask Dice on {len(dice)} lesion slices: min {dice.min():.3f}, median {np.median(dice):.3f}")

    flagged = {}
    for _, study, p, _ in slices:
        flagged[study] = max(flagged.get(study, 0.0), p)
    print("\n| studies (flagged = a slice with p >= 0.5) | planted | clean |")
    print("|-------------------------------------------|---------|-------|")
    for body in sorted({b for b, _ in studies.values()}):
        for verdict, test in [("flagged", lambda p: p >= 0.5), ("not flagged", lambda p: p < 0.5)]:
            row = [
                sum(1 for s, (b, planted) in studies.items() if b == body and planted == want and test(flagged[s]))
                for want in (True, False)
            ]
            print(f"| {body + ' CT, ' + verdict:<41} | {row[0]:>7} | {row[1]:>5} |")

    failures = []
    positives = np.array([s[2] for s in slices if s[3] is not None])
    negatives = np.array([s[2] for s in slices if s[3] is None and s[0].startswith("head CT")])
    if len(positives) and positives.min() < 0.9:
        failures.append(f"a lesion slice scored {positives.min():.4f} < 0.9")
    if len(negatives) and negatives.max() > 0.1:
        failures.append(f"a clean head CT slice scored {negatives.max():.4f} > 0.1")
    if len(dice) and dice.min() < 0.7:
        failures.append(f"a lesion slice's mask has Dice {dice.min():.3f} < 0.7")
    if args.model_3d:
        session_3d = ort.InferenceSession(args.model_3d, providers=["CPUExecutionProvider"])
        rows = [row for run in runs for row in check_3d_run(session, session_3d, run, args.batch)]
        failures += report_3d(rows, pathlib.Path(args.model_3d).name)
    for failure in failures:
        print(f"FAIL: {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The pydicom + numpy baseline: decode and preprocess one CT slice per file, as radstream's operator does.

usage: pydicom_preprocess.py DIR [--spec FILE] [--rounds R] [--first-round K] [--min-seconds S]
                             [--min-iterations N] [--all-plugins] [--save-tensors OUT_DIR]

DIR holds what make_inputs.py writes (manifest.json, the .dcm files, original.npy). Every file is
read into memory first. Per file and round, on one thread, two timed passes, each running the
file again and again until at least --min-seconds and --min-iterations are reached:

  decode      dcmread(BytesIO(bytes)).pixel_array (pydicom 3 picks its decoder plugin: pylibjpeg
              for RLE, JPEG-LS and JPEG 2000 when installed, as here; --all-plugins times every
              other installed plugin too, e.g. pyjpegls for JPEG-LS, pydicom's own RLE decoder);
  preprocess  the same, then what the spec (models/ct-head-bleed.preprocess.toml) asks for:
              Rescale Slope/Intercept to float32; the LINEAR VOI window of PS3.3 C.11.2.1.2.1
              onto the output range (clamped); min/max normalization, clamped to [0, 1];
              resampling to the spec's size by area averaging, which for an integer shrink factor
              is the block mean (reshape + mean; radstream's kernels/src/resample.rs computes the
              same weights); the [1, C, H, W] float32 tensor.

Only the spec fields this benchmark's spec uses are supported (fixed LINEAR window, min_max or no
normalization, 1 or 3 channels, MONOCHROME2, integer shrink factors); anything else stops the
script with a message rather than computing something else.

--save-tensors writes each file's tensor (default plugin) as OUT_DIR/NAME.npy and checks, untimed,
that the lossless files decode to original.npy with every plugin timed; with --rounds 0 that is
all it does. Prints JSON lines on stdout, one per file, plugin and round ({"tool": "pydicom",
"input": NAME, "plugin": P, "default": true, "round": K, "decode_ms": ..., "preprocess_ms": ...})
and one per check, and a line per round on stderr.
"""

import os

# One thread, as radstream's side: set before numpy loads its BLAS.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from io import BytesIO  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
from pydicom import dcmread  # noqa: E402

try:
    import tomllib  # noqa: E402
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_SPEC = HERE.parents[2] / "models" / "ct-head-bleed.preprocess.toml"


class Spec:
    """The fields of a radstream preprocess spec that this baseline implements."""

    def __init__(self, path):
        spec = tomllib.loads(path.read_text())
        self.name = spec["name"]
        self.height, self.width = spec["size"]
        self.channels = spec.get("channels", 1)
        self.y_min, self.y_max = (float(v) for v in spec.get("output_range", [0, 1]))
        window = spec["window"]
        if not isinstance(window, dict) or window.get("function", "linear") != "linear":
            sys.exit(f"{path}: only a fixed LINEAR window is implemented here (got {window!r})")
        self.center, self.width_hu = float(window["center"]), float(window["width"])
        norm = spec.get("normalization", {"kind": "none"})
        if norm["kind"] == "min_max":
            self.norm = (float(norm["min"]), float(norm["max"]))
        elif norm["kind"] == "none":
            self.norm = None
        else:
            sys.exit(f"{path}: normalization {norm['kind']!r} is not implemented here")
        if self.channels not in (1, 3):
            sys.exit(f"{path}: channels must be 1 or 3")


def decode(data, plugin=""):
    """The data set and its pixel array; plugin "" is pydicom's own choice."""
    ds = dcmread(BytesIO(data))
    if plugin:
        ds.pixel_array_options(decoding_plugin=plugin)
    return ds, ds.pixel_array


def preprocess(data, spec, plugin=""):
    """One Part-10 object to its [frames=1, C, H, W] float32 tensor."""
    ds, stored = decode(data, plugin)
    if ds.PhotometricInterpretation != "MONOCHROME2" or ds.get("NumberOfFrames", 1) != 1:
        raise ValueError("this baseline takes single-frame MONOCHROME2 images")
    slope = float(ds.get("RescaleSlope", 1.0))
    intercept = float(ds.get("RescaleIntercept", 0.0))

    x = stored.astype(np.float32)
    if slope != 1.0:
        x *= np.float32(slope)
    if intercept != 0.0:
        x += np.float32(intercept)

    # LINEAR window (C.11.2.1.2.1): ((x - (c - 0.5)) / (w - 1) + 0.5) * (y_max - y_min) + y_min
    # between the thresholds, y_min below and y_max above; the ramp clamped is the same function.
    c, w = spec.center, spec.width_hu
    x -= np.float32(c - 0.5)
    x *= np.float32((spec.y_max - spec.y_min) / (w - 1.0))
    x += np.float32(0.5 * (spec.y_max - spec.y_min) + spec.y_min)
    np.clip(x, min(spec.y_min, spec.y_max), max(spec.y_min, spec.y_max), out=x)

    if spec.norm is not None:
        lo, hi = spec.norm
        x -= np.float32(lo)
        x *= np.float32(1.0 / (hi - lo))
        np.clip(x, 0.0, 1.0, out=x)

    rows, columns = x.shape
    if rows % spec.height or columns % spec.width:
        raise ValueError(f"{rows}x{columns} to {spec.height}x{spec.width} is not an integer shrink")
    fy, fx = rows // spec.height, columns // spec.width
    if fy > 1 or fx > 1:
        x = x.reshape(spec.height, fy, spec.width, fx).mean(axis=(1, 3), dtype=np.float32)

    tensor = x[np.newaxis, np.newaxis]
    if spec.channels == 3:
        tensor = np.repeat(tensor, 3, axis=1)
    return np.ascontiguousarray(tensor, dtype=np.float32)


def per_call(fn, min_seconds, min_iterations):
    """Seconds per call of fn(), called until both minimums are reached; and the number of calls."""
    calls = 0
    started = time.perf_counter()
    while True:
        fn()
        calls += 1
        seconds = time.perf_counter() - started
        if calls >= min_iterations and seconds >= min_seconds:
            return seconds / calls, calls


def plugins_for(uid):
    """The decoder plugins pydicom has for uid, its default (the first available) first."""
    try:
        from pydicom.pixels import get_decoder

        decoder = get_decoder(uid)
        return ["native"] if decoder.is_native else list(decoder._available)
    except Exception:  # a private attribute of pydicom; only for the report
        return ["unknown"]


def variants(entry, all_plugins):
    """(label, plugin argument) pairs to time: pydicom's own choice, then the other plugins."""
    plugins = plugins_for(entry["uid"])
    chosen = [(plugins[0], "")]
    if all_plugins:
        chosen += [(p, p) for p in plugins[1:]]
    return chosen


def check(inputs, spec, original, out, all_plugins):
    out.mkdir(parents=True, exist_ok=True)
    for entry, data in inputs:
        for label, plugin in variants(entry, all_plugins):
            report = {"lossless": entry["lossless"]}
            try:
                _, decoded = decode(data, plugin)
                report["samples_differing_from_original"] = int(np.count_nonzero(decoded != original))
                report["decodes_to_original"] = bool(np.array_equal(decoded, original))
                if not plugin:  # the tensor radstream is compared with: pydicom's default decoder
                    np.save(out / f"{entry['name']}.npy", preprocess(data, spec))
            except Exception as e:  # reported in the table; the other files go on
                report["error"] = f"{type(e).__name__}: {e}"
            line = {"tool": "pydicom", "input": entry["name"], "plugin": label, "default": not plugin,
                    "check": report}
            print(f"pydicom: {entry['name']} ({label}): check {json.dumps(report)}", file=sys.stderr)
            print(json.dumps(line), flush=True)


def time_variant(entry, data, spec, label, plugin, rnd, a):
    """One round of one file with one decoder plugin: its JSON line."""
    head = {"tool": "pydicom", "input": entry["name"], "plugin": label, "default": not plugin}
    try:
        decoded_bytes = decode(data, plugin)[1].nbytes
        for _ in range(2):
            preprocess(data, spec, plugin)
    except Exception as e:
        return {**head, "refused": f"{type(e).__name__}: {e}"}
    decode_s, decode_n = per_call(lambda: decode(data, plugin), a.min_seconds, a.min_iterations)
    full_s, full_n = per_call(lambda: preprocess(data, spec, plugin), a.min_seconds, a.min_iterations)
    print(f"pydicom round {rnd} {entry['name']:>10} ({label}): decode {decode_s * 1e3:.3f} ms ({decode_n}x), "
          f"decode + preprocess {full_s * 1e3:.3f} ms ({full_n}x), {1 / full_s:.1f} slices/s", file=sys.stderr)
    return {
        **head,
        "round": rnd,
        "decode_ms": decode_s * 1e3,
        "preprocess_ms": full_s * 1e3,
        "decode_iterations": decode_n,
        "preprocess_iterations": full_n,
        "decoded_bytes": decoded_bytes,
        "file_bytes": len(data),
        "versions": f"pydicom {pydicom.__version__}, numpy {np.__version__}",
        "timed": "dcmread(BytesIO) + pixel_array [+ numpy transforms], one thread",
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--first-round", type=int, default=1, help="number of the first round in the output")
    p.add_argument("--min-seconds", type=float, default=0.5)
    p.add_argument("--min-iterations", type=int, default=3)
    p.add_argument("--all-plugins", action="store_true",
                   help="also time every other installed decoder plugin, not only pydicom's default")
    p.add_argument("--save-tensors", type=Path, help="write NAME.npy tensors here and check decoding (untimed)")
    a = p.parse_args()

    spec = Spec(a.spec)
    manifest = json.loads((a.dir / "manifest.json").read_text())
    inputs = [(entry, (a.dir / entry["file"]).read_bytes()) for entry in manifest]
    if a.save_tensors:
        check(inputs, spec, np.load(a.dir / "original.npy"), a.save_tensors, a.all_plugins)
    for rnd in range(a.first_round, a.first_round + a.rounds):
        for entry, data in inputs:
            for label, plugin in variants(entry, a.all_plugins):
                print(json.dumps(time_variant(entry, data, spec, label, plugin, rnd, a)), flush=True)


if __name__ == "__main__":
    main()

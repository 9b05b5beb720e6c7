#!/usr/bin/env python3
"""Builds the demo and performance ONNX models from numpy weights, without training.

Requirements: python3 with numpy and the `onnx` package from PyPI (`pip install onnx`); no torch.
Re-running the script writes the same bytes (weights are set by hand or drawn from fixed seeds).

    python3 models/demo/make_models.py                # ct-head-bleed(-3d).onnx and perf-unet3d.onnx here
    python3 models/demo/make_models.py --resnet18     # also perf-resnet18.onnx, into models/demo/cache/

Models:
* ct-head-bleed.onnx: the demo model. Hand-set weights that find the hyperdense blob (acute bleed)
  that `radstream synth` plants in head CT slices. Input `image` float32 [N, 1, 256, 256], what
  models/ct-head-bleed.preprocess.toml produces (brain window c=40 w=80 onto [0, 1]: brain about
  0.45, blood about 0.9, bone and anything above 80 HU 1.0). Outputs `bleed_probability` [N, 1]
  and `bleed_mask` [N, 1, 256, 256], both in [0, 1].
* ct-head-bleed-3d.onnx: the same model over a whole series. Input `volume` float32
  [1, 1, D, 256, 256] (D symbolic, "slices": the series' slices, each preprocessed as above,
  stacked in order along the slice normal), reshaped to [D, 1, 256, 256] and run through exactly
  ct-head-bleed's nodes and weights. Outputs `slice_probability` [1, D] (ct-head-bleed's
  bleed_probability of each slice), `bleed_probability` [1, 1] (their maximum) and `bleed_mask`
  [1, 1, D, 256, 256]. Only constant Reshape targets (with -1) and a ReduceMax are added: no
  Shape/Gather/Concat arithmetic, so D stays symbolic in tract.
* perf-resnet18.onnx: a ResNet-18 classifier, [N, 3, 224, 224] -> [N, 1000], RANDOM weights.
  About 47 MB, so it is generated into a cache (models/demo/cache/, git-ignored) when asked for,
  not committed.
* perf-unet3d.onnx: a small 3D U-Net, [1, 1, 32, 128, 128] -> [1, 1, 32, 128, 128], RANDOM weights.
The perf models are for measuring throughput and latency only: their outputs mean nothing and must
never be used for findings.

How ct-head-bleed works (all thresholds in the [0, 1] units of the preprocessed image; HU figures
for the brain window):
1. A narrow intensity band, 63 to ~79 HU: Sigmoid(k (x - lo)) * Sigmoid(k (hi - x)). Blood
   (66-74 HU plus noise) is mostly in, brain (35 HU), CSF, fat, air are out, and so are bone and
   every pixel the window saturates (1.0). Liver and kidney (60 HU, not in head CT) are mostly out.
2. Its 9x9 mean (Conv, padding same): the share of band pixels around each pixel. A blob of blood
   gives about 0.7-0.85, scattered noise and one- or two-pixel rims (partial volume at the skull
   after resampling) far less.
3. The core: Sigmoid(k (share - 0.63)). The probability is its GlobalMaxPool, flattened to [N, 1].
4. The mask: a wider band (53 HU and up) smoothed the same way, Sigmoid(k (share - 0.5)), which
   puts the mask's edge on the blob's edge, multiplied by the core dilated by 9 pixels (MaxPool
   19x19) so that nothing far from a detected core is marked.
"""

import argparse
import hashlib
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
HERE = pathlib.Path(__file__).resolve().parent


def window(hu):
    """The preprocess spec's LINEAR window (DICOM PS3.3 C.11.2.1.2.1), c=40 w=80, onto [0, 1]."""
    c, w = 40.0, 80.0
    return float(np.clip((hu - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0))


# ct-head-bleed parameters (see the module docstring).
BAND_LO_HU = 63.0  # lower edge of the band that finds the core
MASK_LO_HU = 53.0  # lower edge of the band that draws the mask
BAND_HI = 0.99  # upper edge: saturated pixels (1.0: bone, and blood noise above 79.5 HU) are out
BAND_K = 300.0  # steepness of the band edges, per unit of x
SMOOTH = 9  # side of the mean filter
CORE_T, CORE_K = 0.63, 60.0
MASK_T, MASK_K = 0.5, 40.0
DILATE = 19  # side of the MaxPool that dilates the core


class Graph:
    """A small builder: named initializers and nodes, unique names."""

    def __init__(self):
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, prefix):
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, prefix, array):
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def shape(self, prefix, dims):
        """An int64 initializer: a Reshape target."""
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(dims, dtype=np.int64), name))
        return name

    def op(self, op_type, inputs, output=None, **attrs):
        output = output or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=self.name(op_type), **attrs))
        return output

    def model(self, name, inputs, outputs, doc, metadata):
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="radstream models/demo/make_models.py",
            producer_version="1",
            doc_string=doc,
        )
        # Pinned so that the bytes do not depend on the installed onnx version's default.
        model.ir_version = 8
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model, full_check=True)
        return model


def bleed_ops(g, x, probability="bleed_probability", mask="bleed_mask"):
    """ct-head-bleed's per-slice ops on `x` [N, 1, 256, 256]: writes `probability` [N, 1] and
    `mask` [N, 1, 256, 256] (both models run exactly these nodes, with these weights)."""

    def band(lo):
        above = g.op("Sigmoid", [g.op("Mul", [g.op("Sub", [x, g.const("lo", lo)]), g.const("k", BAND_K)])])
        below = g.op("Sigmoid", [g.op("Mul", [g.op("Sub", [g.const("hi", BAND_HI), x]), g.const("k", BAND_K)])])
        return g.op("Mul", [above, below])

    mean = np.full((1, 1, SMOOTH, SMOOTH), 1.0 / SMOOTH**2, dtype=np.float32)
    pad = SMOOTH // 2

    def share(band_map):
        return g.op("Conv", [band_map, g.const("mean", mean)], kernel_shape=[SMOOTH, SMOOTH], pads=[pad] * 4)

    def step(value, threshold, k, output=None):
        return g.op("Sigmoid", [g.op("Mul", [g.op("Sub", [value, g.const("t", threshold)]), g.const("k", k)])], output)

    core = step(share(band(window(BAND_LO_HU))), CORE_T, CORE_K)
    g.op("Flatten", [g.op("GlobalMaxPool", [core])], probability, axis=1)
    near_core = g.op("MaxPool", [core], kernel_shape=[DILATE, DILATE], pads=[DILATE // 2] * 4, strides=[1, 1])
    g.op("Mul", [step(share(band(window(MASK_LO_HU))), MASK_T, MASK_K), near_core], mask)
    return probability, mask


SIDE = 256


def ct_head_bleed():
    g = Graph()
    bleed_ops(g, "image")
    return g.model(
        "ct_head_bleed",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, SIDE, SIDE])],
        [
            helper.make_tensor_value_info("bleed_probability", TensorProto.FLOAT, ["N", 1]),
            helper.make_tensor_value_info("bleed_mask", TensorProto.FLOAT, ["N", 1, SIDE, SIDE]),
        ],
        "Demo acute-bleed detector for radstream's synthetic head CT: hand-set weights, no training. "
        "Finds the hyperdense blob `radstream synth` plants; not a medical device, not for real images.",
        {"name": "ct-head-bleed", "version": "1.0.0", "weights": "hand-set"},
    )


def ct_head_bleed_3d():
    """ct-head-bleed over a whole series: `volume` [1, 1, D, 256, 256] is reshaped to D slices
    [D, 1, 256, 256], which go through ct-head-bleed's ops and weights unchanged. Only constant
    Reshape targets (with -1) and a ReduceMax are added, no shape arithmetic, so D stays symbolic."""
    g = Graph()
    slices = g.op("Reshape", ["volume", g.shape("slices_shape", [-1, 1, SIDE, SIDE])])
    probability, mask = bleed_ops(g, slices, probability=g.name("per_slice_probability"), mask=g.name("per_slice_mask"))
    g.op("Reshape", [probability, g.shape("row_shape", [1, -1])], "slice_probability")
    g.op("ReduceMax", ["slice_probability"], "bleed_probability", axes=[1], keepdims=1)
    g.op("Reshape", [mask, g.shape("volume_shape", [1, 1, -1, SIDE, SIDE])], "bleed_mask")
    return g.model(
        "ct_head_bleed_3d",
        [helper.make_tensor_value_info("volume", TensorProto.FLOAT, [1, 1, "slices", SIDE, SIDE])],
        [
            helper.make_tensor_value_info("bleed_probability", TensorProto.FLOAT, [1, 1]),
            helper.make_tensor_value_info("slice_probability", TensorProto.FLOAT, [1, "slices"]),
            helper.make_tensor_value_info("bleed_mask", TensorProto.FLOAT, [1, 1, "slices", SIDE, SIDE]),
        ],
        "Demo acute-bleed detector for radstream's synthetic head CT, whole series: ct-head-bleed's "
        "hand-set per-slice ops over the slices of one series stacked along the patient axis; "
        "bleed_probability is the maximum of slice_probability. No training; not a medical device, "
        "not for real images.",
        {"name": "ct-head-bleed-3d", "version": "1.0.0", "weights": "hand-set (ct-head-bleed's)"},
    )


RANDOM_DOC = "RANDOM WEIGHTS (seed {seed}) for performance measurements only; outputs are meaningless, never use for findings."


def he_normal(rng, shape):
    fan_in = int(np.prod(shape[1:]))
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def conv(g, rng, x, cin, cout, k, stride=1, relu=True, scale=1.0, dims=2):
    """A convolution with its batch norm folded in (weights and a bias), then ReLU."""
    w = he_normal(rng, (cout, cin) + (k,) * dims) * np.float32(scale)
    b = (rng.standard_normal(cout) * 0.01).astype(np.float32)
    y = g.op(
        "Conv",
        [x, g.const("w", w), g.const("b", b)],
        kernel_shape=[k] * dims,
        strides=[stride] * dims,
        pads=[k // 2] * (2 * dims),
    )
    return g.op("Relu", [y]) if relu else y


def resnet18(seed=18):
    rng = np.random.default_rng(seed)
    g = Graph()
    y = conv(g, rng, "input", 3, 64, 7, stride=2)
    y = g.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        for block in range(2):
            s = stride if block == 0 else 1
            h = conv(g, rng, y, cin, cout, 3, stride=s)
            # The residual branch scaled down so that activations stay bounded with random weights.
            h = conv(g, rng, h, cout, cout, 3, relu=False, scale=0.5)
            shortcut = conv(g, rng, y, cin, cout, 1, stride=s, relu=False) if (s != 1 or cin != cout) else y
            y = g.op("Relu", [g.op("Add", [h, shortcut])])
            cin = cout
    y = g.op("Flatten", [g.op("GlobalAveragePool", [y])], axis=1)
    w = (rng.standard_normal((512, 1000)) * np.sqrt(1.0 / 512)).astype(np.float32)
    g.op("Gemm", [y, g.const("fc_w", w), g.const("fc_b", np.zeros(1000, np.float32))], "logits")
    return g.model(
        "perf_resnet18",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        "ResNet-18-class classifier. " + RANDOM_DOC.format(seed=seed),
        {"name": "perf-resnet18", "version": "1.0.0", "weights": f"random, seed {seed}"},
    )


def unet3d(seed=3):
    rng = np.random.default_rng(seed)
    g = Graph()

    def double(x, cin, cout):
        return conv(g, rng, conv(g, rng, x, cin, cout, 3, dims=3), cout, cout, 3, dims=3)

    widths = [8, 16, 32, 64]
    skips, y, cin = [], "volume", 1
    for level, width in enumerate(widths):
        y = double(y, cin, width)
        cin = width
        if level < len(widths) - 1:
            skips.append((y, width))
            y = g.op("MaxPool", [y], kernel_shape=[2, 2, 2], strides=[2, 2, 2])
    for skip, width in reversed(skips):
        w = he_normal(rng, (cin, width, 2, 2, 2))
        y = g.op("ConvTranspose", [y, g.const("up", w)], kernel_shape=[2, 2, 2], strides=[2, 2, 2])
        y = double(g.op("Concat", [y, skip], axis=1), 2 * width, width)
        cin = width
    y = conv(g, rng, y, cin, 1, 1, relu=False, dims=3)
    g.op("Sigmoid", [y], "segmentation")
    shape = [1, 1, 32, 128, 128]
    return g.model(
        "perf_unet3d",
        [helper.make_tensor_value_info("volume", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("segmentation", TensorProto.FLOAT, shape)],
        "Small 3D U-Net-class segmenter (3 levels, 8-64 channels). " + RANDOM_DOC.format(seed=seed),
        {"name": "perf-unet3d", "version": "1.0.0", "weights": f"random, seed {seed}"},
    )


def save(model, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString(deterministic=True)
    path.write_bytes(data)
    print(f"{path}  {len(data):>10} bytes  sha256 {hashlib.sha256(data).hexdigest()}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=HERE, help="folder for the committed models")
    parser.add_argument("--resnet18", action="store_true", help="also generate perf-resnet18.onnx (about 47 MB)")
    parser.add_argument("--cache", type=pathlib.Path, default=HERE / "cache", help="folder for perf-resnet18.onnx")
    args = parser.parse_args()
    save(ct_head_bleed(), args.out / "ct-head-bleed.onnx")
    save(ct_head_bleed_3d(), args.out / "ct-head-bleed-3d.onnx")
    save(unet3d(), args.out / "perf-unet3d.onnx")
    if args.resnet18:
        save(resnet18(), args.cache / "perf-resnet18.onnx")


if __name__ == "__main__":
    main()

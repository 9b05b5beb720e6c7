"""Writes tiny.onnx (and tiny_batch2.onnx, the same with a fixed batch of 2), the infer operator's test model (a few hundred bytes, no training).

    python3 operators/src/infer/testdata/make_tiny.py   # needs `pip install onnx`

input  `image` [N, 1, 8, 8] float32 (N symbolic)
mask   = Sigmoid(2 * image - 1)                    [N, 1, 8, 8]  (a 1x1 Conv, then Sigmoid)
score  = mean of mask over the image               [N, 1]
flag   = [score, 1 - score]                         [N, 2]

So a blank image (0) scores sigmoid(-1) = 0.2689, a white one (1) sigmoid(1) = 0.7311: tests
compute the expected values by hand from that. Deterministic: the same bytes on every run.

tiny_volume.onnx is its model of whole series:

input  `volume` [1, 1, D, 8, 8] float32 (D symbolic)
slice  = mean of Sigmoid(2 * volume - 1) over each slice   [1, D]
score  = max of slice                                       [1, 1]
"""

import os

import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))


def build(batch) -> onnx.ModelProto:
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [2.0])
    bias = helper.make_tensor("b", TensorProto.FLOAT, [1], [-1.0])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["z"], name="conv"),
        helper.make_node("Sigmoid", ["z"], ["mask"], name="sigmoid"),
        helper.make_node("ReduceMean", ["mask"], ["score"], axes=[2, 3], keepdims=0, name="mean"),
        helper.make_node("Sub", ["one", "score"], ["rest"], name="rest"),
        helper.make_node("Concat", ["score", "rest"], ["flag"], axis=1, name="concat"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 1, 8, 8])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [batch, 1]),
            helper.make_tensor_value_info("flag", TensorProto.FLOAT, [batch, 2]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, [batch, 1, 8, 8]),
        ],
        initializer=[weight, bias, one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="radstream-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_volume() -> onnx.ModelProto:
    weight = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1, 1], [2.0])
    bias = helper.make_tensor("b", TensorProto.FLOAT, [1], [-1.0])
    nodes = [
        helper.make_node("Conv", ["volume", "w", "b"], ["z"], name="conv"),
        helper.make_node("Sigmoid", ["z"], ["mask"], name="sigmoid"),
        helper.make_node("ReduceMean", ["mask"], ["per_slice"], axes=[1, 3, 4], keepdims=0, name="mean"),
        helper.make_node("ReduceMax", ["per_slice"], ["score"], axes=[1], keepdims=1, name="max"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_volume",
        [helper.make_tensor_value_info("volume", TensorProto.FLOAT, [1, 1, "D", 8, 8])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, [1, 1]),
            helper.make_tensor_value_info("per_slice", TensorProto.FLOAT, [1, "D"]),
        ],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="radstream-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main() -> None:
    onnx.save(build("N"), os.path.join(HERE, "tiny.onnx"))
    onnx.save(build(2), os.path.join(HERE, "tiny_batch2.onnx"))
    onnx.save(build_volume(), os.path.join(HERE, "tiny_volume.onnx"))


if __name__ == "__main__":
    main()

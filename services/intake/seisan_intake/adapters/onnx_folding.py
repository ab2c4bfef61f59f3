"""Fold PP-OCR's affine layers into its convolutions, in memory, before ONNX Runtime loads it.

PP-OCRv5's mobile models (PPLCNetV3 backbone) were exported from Paddle with
every convolution followed by a bias ``Add``, a "learnable affine block"
(``Mul`` by a scalar, ``Add`` of a scalar), ``HardSwish``, and a second affine
block. ONNX Runtime fuses the bias but not the scalar ``Mul``/``Add``, so each
convolution leaves its blocked (NCHWc) layout and comes back: reorder, four
element-wise passes, reorder. Those passes were half of recognition's time.

The rewrite here is exact algebra, so the model computes the same function
(up to float rounding):

* forward — ``conv → Add(c) / Mul(c) …`` with per-channel or scalar
  constants: ``W·s``, ``(B·s) + t`` become the convolution's own weights and
  bias, and ONNX Runtime then fuses the ``HardSwish`` into it;
* backward — ``Mul(s) → Add(t) → conv`` with scalars: for an unpadded
  convolution ``W·s`` and ``B + t·ΣW``; a padded one (a depthwise 3×3 or 5×5)
  would see ``t`` where it expects the zero padding, so there the affine block
  becomes a 1×1 depthwise convolution instead, which ONNX Runtime runs in
  the blocked layout without reorders.

A graph that does not have these shapes is left as it is. Nothing is written
anywhere: the model goes from the wheel's file to serialised bytes for
``onnxruntime.InferenceSession``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FoldReport:
    """What was rewritten: convolutions that absorbed the layers after / before them."""

    forward: int
    backward: int
    depthwise_affines: int


@dataclass
class _Graph:
    nodes: list[Any]
    constants: dict[str, np.ndarray]
    outputs: set[str]
    _consumers: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.recount()

    def recount(self) -> None:
        self._consumers = Counter(name for node in self.nodes for name in node.input)

    def sole_consumer(self, tensor: str) -> Any | None:
        """The one node reading ``tensor``, if exactly one does and it is no graph output."""
        if tensor in self.outputs or self._consumers[tensor] != 1:
            return None
        return next(node for node in self.nodes if tensor in node.input)

    def producer(self, tensor: str) -> Any | None:
        return next((node for node in self.nodes if tensor in node.output), None)

    def constant_operand(self, node: Any, tensor: str) -> np.ndarray | None:
        """For a binary ``node`` reading ``tensor``, its other operand if that is a constant."""
        inputs = list(node.input)
        if len(inputs) != 2 or tensor not in inputs:
            return None
        other = inputs[1] if inputs[0] == tensor else inputs[0]
        return self.constants.get(other)

    def add_constant(self, name: str, value: np.ndarray) -> str:
        self.constants[name] = value
        return name


def fold_affine_layers(path: Path) -> tuple[bytes, FoldReport]:
    """The model at ``path`` with its affine layers folded, serialised; see the module docstring."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = _load_graph(model)
    forward = sum(_fold_forward(graph, conv) for conv in _convolutions(graph))
    graph.recount()
    backward = depthwise = 0
    for conv in _convolutions(graph):
        outcome = _fold_backward(graph, conv)
        backward += outcome == "folded"
        depthwise += outcome == "depthwise"
    used = {name for node in graph.nodes for name in node.input}
    del model.graph.node[:]
    model.graph.node.extend(graph.nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(
        numpy_helper.from_array(value, name)
        for name, value in graph.constants.items()
        if name in used
    )
    return model.SerializeToString(), FoldReport(forward, backward, depthwise)


def _load_graph(model: Any) -> _Graph:
    """Constant nodes (and reshapes of constants) become plain arrays."""
    from onnx import numpy_helper

    inputs = {value.name for value in model.graph.input}  # an initializer there can be overridden
    constants = {
        init.name: numpy_helper.to_array(init)
        for init in model.graph.initializer
        if init.name not in inputs
    }
    nodes = []
    for node in model.graph.node:
        if node.op_type == "Constant" and [a.name for a in node.attribute] == ["value"]:
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        elif node.op_type == "Reshape" and all(name in constants for name in node.input):
            constants[node.output[0]] = constants[node.input[0]].reshape(constants[node.input[1]])
        else:
            nodes.append(node)
    return _Graph(nodes, constants, {output.name for output in model.graph.output})


def _convolutions(graph: _Graph) -> Iterator[Any]:
    """Convolutions with constant weights (a snapshot: the graph may change meanwhile)."""
    for node in list(graph.nodes):
        if node.op_type == "Conv" and node.input[1] in graph.constants:
            yield node


def _attribute(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _weights(graph: _Graph, conv: Any) -> tuple[np.ndarray, np.ndarray]:
    weights = graph.constants[conv.input[1]].astype(np.float64)
    if len(conv.input) > 2 and conv.input[2]:
        bias = graph.constants[conv.input[2]].astype(np.float64)
    else:
        bias = np.zeros(weights.shape[0])
    return weights, bias


def _set_weights(graph: _Graph, conv: Any, weights: np.ndarray, bias: np.ndarray) -> None:
    stem = f"{conv.output[0]}/folded"
    conv.input[1] = graph.add_constant(f"{stem}/W", weights.astype(np.float32))
    bias_name = graph.add_constant(f"{stem}/B", bias.astype(np.float32))
    if len(conv.input) > 2:
        conv.input[2] = bias_name
    else:
        conv.input.append(bias_name)


def _per_channel(value: np.ndarray, channels: int) -> np.ndarray | None:
    """``value`` as one number per output channel, if it broadcasts that way over NCHW."""
    if value.size == 1 and value.ndim <= 4:
        return np.full(channels, float(value.reshape(-1)[0]))
    if value.size == channels and value.shape in ((1, channels, 1, 1), (channels, 1, 1)):
        return value.reshape(-1).astype(np.float64)
    return None


def _fold_forward(graph: _Graph, conv: Any) -> bool:
    """``conv → Add/Mul by constants`` → the convolution's weights and bias."""
    weights, bias = _weights(graph, conv)
    channels = weights.shape[0]
    tensor, folded = conv.output[0], False
    while (node := graph.sole_consumer(tensor)) is not None and node.op_type in ("Add", "Mul"):
        operand = graph.constant_operand(node, tensor)
        values = None if operand is None else _per_channel(operand, channels)
        if values is None:
            break
        if node.op_type == "Mul":
            weights = weights * values.reshape(-1, *([1] * (weights.ndim - 1)))
            bias = bias * values
        else:
            bias = bias + values
        graph.nodes.remove(node)
        graph.recount()
        tensor, folded = node.output[0], True
    if folded:
        conv.output[0] = tensor
        _set_weights(graph, conv, weights, bias)
    return folded


def _scalar_chain(graph: _Graph, conv: Any) -> tuple[str, list[Any], float, float] | None:
    """``x → Mul/Add by scalars … → conv``: (x, the nodes, s, t) with ``s·x + t`` reaching conv."""
    tensor, chain = conv.input[0], []
    while (node := graph.producer(tensor)) is not None and node.op_type in ("Add", "Mul"):
        if graph.sole_consumer(tensor) is None:
            break
        sources = [name for name in node.input if name not in graph.constants]
        operand = graph.constant_operand(node, sources[0]) if len(sources) == 1 else None
        if operand is None or operand.size != 1 or operand.ndim > 4:
            break
        chain.append((node, float(operand.reshape(-1)[0])))
        tensor = sources[0]
    if not chain:
        return None
    scale, shift = 1.0, 0.0
    for node, value in reversed(chain):  # from x towards the convolution
        if node.op_type == "Mul":
            scale, shift = scale * value, shift * value
        else:
            shift += value
    return tensor, [node for node, _ in chain], scale, shift


def _fold_backward(graph: _Graph, conv: Any) -> str | None:
    """Scalar ``Mul``/``Add`` before ``conv``: folded in, or (padded conv) one depthwise 1×1."""
    found = _scalar_chain(graph, conv)
    if found is None:
        return None
    source, chain, scale, shift = found
    weights, bias = _weights(graph, conv)
    padded = any(_attribute(conv, "pads", [])) or _attribute(conv, "auto_pad", b"NOTSET") not in (
        b"NOTSET",
        "NOTSET",
        b"VALID",
        "VALID",
    )
    for node in chain:
        graph.nodes.remove(node)
    if padded:
        from onnx import helper

        channels = weights.shape[1] * int(_attribute(conv, "group", 1))
        stem = f"{conv.output[0]}/affine"
        scale_name = graph.add_constant(
            f"{stem}/W", np.full((channels, 1, 1, 1), scale, dtype=np.float32)
        )
        shift_name = graph.add_constant(f"{stem}/B", np.full(channels, shift, dtype=np.float32))
        affine = helper.make_node(
            "Conv", [source, scale_name, shift_name], [stem], group=channels, kernel_shape=[1, 1]
        )
        graph.nodes.insert(graph.nodes.index(conv), affine)
        conv.input[0] = stem
        graph.recount()
        return "depthwise"
    bias = bias + shift * weights.reshape(weights.shape[0], -1).sum(axis=1)
    conv.input[0] = source
    _set_weights(graph, conv, weights * scale, bias)
    graph.recount()
    return "folded"

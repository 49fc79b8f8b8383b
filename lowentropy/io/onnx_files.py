"""ONNX models: the initializers that are the weights of Gemm, MatMul and Conv nodes.

``Gemm`` (``Y = A·B' + C``): the weight is ``B``, stored ``out x in`` when ``transB = 1``
and ``in x out`` otherwise (then transposed); ``C`` is the bias. ``MatMul`` (``Y = X·W``):
``W`` is ``in x out`` and is transposed; a constant left operand is already ``out x in``.
``Conv``: ``W`` is ``(F, C/groups, kh, kw)``, ``B`` the bias. Initializers that feed no
such node are skipped. External data are read only from files inside the model's folder.

``uses_per_inference`` comes from the inferred shapes when they are static: the output
positions of a convolution, the rows of a MatMul input other than the batch (tokens);
1 otherwise.
"""

from __future__ import annotations

import math
import os
import stat

import numpy as np

from ..networks.model import Layer, Network
from ._common import no_layers, one_line, require, unreadable

__all__ = ["load_onnx_network"]

_WEIGHT_OPS = ("Gemm", "MatMul", "Conv")


def _inside(base: str, location: str) -> bool:
    try:
        base = os.path.realpath(base)
        target = os.path.realpath(os.path.join(base, location))
    except (ValueError, OSError):  # a NUL byte, a symlink loop
        return False
    return not os.path.isabs(location) and os.path.commonpath([base, target]) == base


def _check_external(path: str, model) -> None:
    """Every external data file must be a regular file inside the model's folder (a
    symbolic link is followed first), and the bytes each tensor claims must be there."""
    from onnx import external_data_helper

    base = os.path.dirname(os.path.abspath(path))
    for tensor in model.graph.initializer:
        if not external_data_helper.uses_external_data(tensor):
            continue
        where = f"{path}: initializer {tensor.name!r:.100}"
        try:
            info = external_data_helper.ExternalDataInfo(tensor)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{where}: unreadable external data entry "
                             f"({one_line(exc)})") from None
        location = info.location
        if not location or not _inside(base, location):
            raise ValueError(f"{where} points to external data {location!r:.200} outside the "
                             "model's folder; refused")
        target = os.path.realpath(os.path.join(base, location))
        try:
            st = os.stat(target)
        except OSError as exc:
            raise ValueError(f"{where}: external data {location!r:.200} cannot be read "
                             f"({one_line(exc)})") from None
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{where}: external data {location!r:.200} is not a regular "
                             "file; refused")
        offset = int(info.offset or 0)
        length = int(info.length) if info.length else st.st_size - offset
        if offset < 0 or length < 0 or offset + length > st.st_size:
            raise ValueError(f"{where} claims bytes {offset} to {offset + length} of "
                             f"{location!r:.200}, which has {st.st_size} bytes; refused")


def _load_model(onnx, path: str):
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf DecodeError and friends
        raise unreadable(path, "ONNX", exc) from None
    if not model.HasField("graph") or not model.graph.node:
        raise ValueError(f"{path}: not a readable ONNX file (no graph with nodes; the file "
                         "may be truncated or not an ONNX model)")
    _check_external(path, model)
    try:  # given the path, the checker finds external data next to the model
        onnx.checker.check_model(path)
    except Exception as exc:
        raise ValueError(f"{path}: invalid ONNX model ({one_line(exc)})") from None
    return model


def _array(path: str, tensor) -> np.ndarray:
    """An initializer as an array, its external data read from the model's folder only."""
    from onnx import external_data_helper, numpy_helper

    if external_data_helper.uses_external_data(tensor):  # locations checked on loading
        try:
            external_data_helper.load_external_data_for_tensor(
                tensor, os.path.dirname(os.path.abspath(path)))
        except Exception as exc:
            raise ValueError(f"{path}: cannot read the external data of initializer "
                             f"{tensor.name!r} ({one_line(exc)})") from None
    try:
        arr = numpy_helper.to_array(tensor)
    except Exception as exc:
        raise ValueError(f"{path}: initializer {tensor.name!r} is corrupt "
                         f"({one_line(exc)})") from None
    if arr.dtype.kind == "V" or arr.dtype.name == "bfloat16":  # ml_dtypes' bfloat16
        arr = arr.astype(np.float32)
    return arr


def _static_shapes(onnx, model) -> dict[str, tuple[int, ...]]:
    """Value name → static shape, where shape inference finds one."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shapes are an optional refinement
        return {}
    graph = inferred.graph
    shapes = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        dims = info.type.tensor_type.shape.dim
        if info.type.tensor_type.HasField("shape") and all(d.HasField("dim_value")
                                                            for d in dims):
            shapes[info.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


def _uses(node, shapes) -> int:
    if node.op_type == "Conv":
        out = shapes.get(node.output[0])
        if out is not None and len(out) > 2:
            return max(1, math.prod(out[2:]))
    elif node.op_type == "MatMul":
        inp = shapes.get(node.input[0])
        if inp is not None and len(inp) > 2:
            return max(1, math.prod(inp[1:-1]))
    return 1


def _attribute(node, name: str, default: int) -> int:
    for attr in node.attribute:
        if attr.name == name:
            return int(attr.i)
    return default


def _weight_of(node, inits) -> tuple[str, str, bool] | None:
    """``(weight initializer, bias initializer or "", transpose?)`` of a node."""
    inputs = list(node.input)
    if node.op_type == "Gemm" and len(inputs) >= 2 and inputs[1] in inits:
        bias = inputs[2] if len(inputs) > 2 and inputs[2] in inits else ""
        return inputs[1], bias, _attribute(node, "transB", 0) == 0
    if node.op_type == "MatMul" and len(inputs) == 2:
        if inputs[1] in inits:
            return inputs[1], "", True
        if inputs[0] in inits:
            return inputs[0], "", False
    if node.op_type == "Conv" and len(inputs) >= 2 and inputs[1] in inits:
        bias = inputs[2] if len(inputs) > 2 and inputs[2] in inits else ""
        return inputs[1], bias, False
    return None


def load_onnx_network(path: str | os.PathLike, name: str) -> Network:
    """A network from the Gemm / MatMul / Conv weights of an ONNX model."""
    path = os.fspath(path)
    onnx = require("onnx", "onnx", "ONNX models")
    model = _load_model(onnx, path)
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    shapes = _static_shapes(onnx, model)
    layers: list[Layer] = []
    seen: set[str] = set()
    for node in graph.node:
        if node.op_type not in _WEIGHT_OPS:
            continue
        found = _weight_of(node, inits)
        if found is None or found[0] in seen:
            continue
        wname, bname, transpose = found
        weight = _array(path, inits[wname])
        if weight.dtype.kind != "f" or weight.ndim < 2:
            continue
        if node.op_type != "Conv":
            if weight.ndim != 2:
                continue
            weight = weight.T if transpose else weight
        bias = _array(path, inits[bname]) if bname else None
        if bias is not None and (bias.dtype.kind != "f" or bias.shape != (weight.shape[0],)):
            bias = None
        seen.add(wname)
        kind = "conv" if node.op_type == "Conv" else "fc"
        layers.append(Layer(wname, weight, kind, _uses(node, shapes), bias=bias))
    if not layers:
        raise no_layers(path, "ONNX")
    return Network(name, layers, source=path,
                   description="weights read from an ONNX model (Gemm, MatMul, Conv)")

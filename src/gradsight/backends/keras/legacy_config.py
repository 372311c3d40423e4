"""Rewriting Keras 2 model configs so that Keras 3's legacy reader rebuilds them (plain dicts, no Keras).

Used by :mod:`.legacy`; see :func:`fix_legacy_config` for what is rewritten.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["fix_legacy_config", "layer_configs", "strip_modules"]


def fix_legacy_config(config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A copy of a Keras 2 model config that Keras 3's legacy reader rebuilds, and what was changed.

    - a ``Sequential`` stored as a bare list of layers (Keras <= 2.2.2) gets its dict form;
    - a ``Sequential`` whose first layer carries ``batch_input_shape`` (or ``input_shape``/
      ``input_dim``) and which has no ``InputLayer`` (Keras <= 2.2.x) gets an explicit
      ``InputLayer`` with that shape;
    - ``VarianceScaling(distribution="normal")`` (Keras <= 2.2: ``he_normal``,
      ``lecun_normal``) becomes ``"truncated_normal"``, its meaning then (initialisers do
      not change loaded weights).
    Nested models are fixed too. The input is not modified.
    """
    fixed = copy.deepcopy(config)
    changes: list[str] = []
    _fix_model(fixed, changes)
    _fix_initializers(fixed, changes)
    return fixed, changes


def layer_configs(config: Any) -> list[dict[str, Any]]:
    """Every layer config below a model config, nested models included (depth first)."""
    out: list[dict[str, Any]] = []
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner if isinstance(inner, list) else inner.get("layers") if isinstance(inner, dict) else None
    for layer in layers or []:
        if isinstance(layer, dict):
            out.append(layer)
            out.extend(layer_configs(layer))
    return out


def _fix_model(model: dict[str, Any], changes: list[str]) -> None:
    if model.get("class_name") == "Sequential":
        if isinstance(model.get("config"), list):  # Keras <= 2.2.2
            model["config"] = {"name": "sequential", "layers": model["config"]}
            changes.append("Sequential config given as a list")
        layers = model["config"].get("layers") or []
        if layers and layers[0].get("class_name") != "InputLayer":
            first = layers[0].get("config", {})
            shape = first.pop("batch_input_shape", None)
            if shape is None and first.get("input_shape") is not None:
                shape = [None] + list(first.pop("input_shape"))
            if shape is None and first.get("input_dim") is not None:
                shape = [None, first.pop("input_dim")]
            if shape is not None:
                dtype = first.get("dtype", "float32")
                layers.insert(0, {
                    "class_name": "InputLayer",
                    "config": {
                        "batch_input_shape": list(shape),
                        "dtype": dtype if isinstance(dtype, str) else "float32",
                        "sparse": False,
                        "name": f"{first.get('name', 'layer')}_input",
                    },
                })
                changes.append(f"explicit input layer {tuple(shape)} added before {first.get('name')!r}")
    for layer in layer_configs(model):
        if layer.get("class_name") in ("Sequential", "Model", "Functional"):
            _fix_model(layer, changes)
    if model.get("class_name") in ("Model", "Functional") and isinstance(model.get("config"), dict):
        _fix_nested_sequential_nodes(model["config"], changes)


def _has_own_input(sequential: dict[str, Any]) -> bool:
    layers = (sequential.get("config") or {}).get("layers") or []
    return bool(layers) and (
        layers[0].get("class_name") == "InputLayer" or "batch_input_shape" in (layers[0].get("config") or {})
    )


def _fix_nested_sequential_nodes(config: dict[str, Any], changes: list[str]) -> None:
    """Keras 2 counted a nested model's own construction as its node 0, so its call inside the
    outer model is node 1 in the file; Keras 3 creates no such node. Keras 3 shifts references
    to a nested Functional's outputs itself, but neither inbound references nor Sequentials."""

    def name(layer: dict[str, Any]) -> Any:
        return layer.get("name") or (layer.get("config") or {}).get("name")

    layers = config.get("layers") or []
    sequential = {name(x) for x in layers if x.get("class_name") == "Sequential" and _has_own_input(x)}
    functional = {name(x) for x in layers if x.get("class_name") in ("Model", "Functional")}
    sequential.discard(None)
    functional.discard(None)
    if not sequential and not functional:
        return

    def shift(node: Any, names: set[Any]) -> Any:
        if isinstance(node, list) and len(node) in (3, 4) and isinstance(node[0], str) and isinstance(node[1], int):
            return [node[0], node[1] - 1, *node[2:]] if node[0] in names and node[1] > 0 else node
        if isinstance(node, list):
            return [shift(n, names) for n in node]
        return node

    for layer in layers:
        if layer.get("inbound_nodes"):
            layer["inbound_nodes"] = shift(layer["inbound_nodes"], sequential | functional)
    if config.get("output_layers") and sequential:
        config["output_layers"] = shift(config["output_layers"], sequential)
    changes.append(f"node indices of nested models {sorted(sequential | functional)}")


def strip_modules(node: Any) -> Any:
    """The config without 'module'/'registered_name' keys, so Keras 3 reads every object the legacy way."""
    if isinstance(node, dict):
        drop = ("module", "registered_name") if "class_name" in node else ()
        return {k: strip_modules(v) for k, v in node.items() if k not in drop}
    if isinstance(node, list):
        return [strip_modules(v) for v in node]
    return node


def _fix_initializers(node: Any, changes: list[str]) -> None:
    if isinstance(node, dict):
        if node.get("class_name") == "VarianceScaling" and isinstance(node.get("config"), dict):
            if node["config"].get("distribution") == "normal":
                node["config"]["distribution"] = "truncated_normal"
                if "VarianceScaling distribution 'normal'" not in changes:
                    changes.append("VarianceScaling distribution 'normal'")
        for value in node.values():
            _fix_initializers(value, changes)
    elif isinstance(node, list):
        for value in node:
            _fix_initializers(value, changes)

"""The class labels a classifier model carries, for ``class: LABEL``.

skl2onnx and onnxmltools write them as attributes of the classifier operator
(``LinearClassifier``, ``TreeEnsembleClassifier``, ``SVMClassifier``, ...) and of the
``ZipMap`` that turns its probabilities into maps: ``classlabels_int64s``,
``classlabels_ints`` or ``classlabels_strings``. The column order of the probability
matrix is the order of those labels. A linear classifier in a pipeline exported from a
DataFrame carries them as a constant table instead (see :func:`_label_table`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["class_labels"]

_LABEL_ATTRIBUTES = ("classlabels_int64s", "classlabels_ints", "classlabels_strings")
_HOPS = 8  # how far back from an output to look for the operator carrying the labels


def class_labels(model: Path | bytes) -> Callable[[str], list[Any] | None]:
    """A lookup ``output name -> labels`` for ``model``, a file or the bytes of one
    (None: not known). The scorer passes the bytes it checked and loaded, so the labels
    are those of the served model even if the file changed meanwhile.

    The graph is read (with the ``onnx`` package, imported then) at the first lookup,
    which only a matrix or ZipMap output needs; without ``onnx`` no labels are known.
    """
    graph: list[Any] = []

    def graph_nodes() -> Any:
        if not graph:
            try:
                import onnx
            except ImportError:
                return ()
            proto = (
                onnx.load_model_from_string(model)
                if isinstance(model, bytes)
                else onnx.load(str(model), load_external_data=False)
            )
            graph.append(proto.graph)
        return graph[0].node

    def lookup(output: str) -> list[Any] | None:
        all_nodes = graph_nodes()
        producers = {name: node for node in all_nodes for name in node.output}
        everywhere = {tuple(labels) for node in all_nodes if (labels := _labels_of(node))}
        frontier = [output]
        for _ in range(_HOPS):
            found = [producers[name] for name in frontier if name in producers]
            for node in found:
                labels = _labels_of(node)
                if labels:
                    return labels
            frontier = [name for node in found for name in node.input]
            if not frontier:
                break
        # Not on the path back from the output: one set of labels in the whole graph is
        # still unambiguous.
        if len(everywhere) == 1:
            return list(next(iter(everywhere)))
        return _label_table(graph[0]) if graph and not everywhere else None

    return lookup


def _labels_of(node: Any) -> list[Any] | None:
    for attribute in node.attribute:
        if attribute.name in _LABEL_ATTRIBUTES:
            if attribute.name == "classlabels_strings":
                return [s.decode() for s in attribute.strings]
            return list(attribute.ints)
    return None


def _label_table(graph: Any) -> list[Any] | None:
    """The labels of a linear classifier skl2onnx wrote without a classifier operator
    (a pipeline from a DataFrame): a constant 1-D table that ``ArrayFeatureExtractor``
    indexes with the arg-max of the scores, the table's order being the columns'."""
    from onnx import numpy_helper

    constants = {tensor.name: tensor for tensor in graph.initializer}
    tables = [
        numpy_helper.to_array(constants[node.input[0]])
        for node in graph.node
        if node.op_type == "ArrayFeatureExtractor" and node.input[0] in constants
    ]
    tables = [t for t in tables if t.ndim == 1]
    if len(tables) != 1:
        return None
    return [v.decode() if isinstance(v, bytes) else v for v in tables[0].tolist()]

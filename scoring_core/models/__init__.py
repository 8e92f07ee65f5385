"""Model versions on disk: Triton's folder layout, labels, pins and the history of moves.

A versioned model is a folder of numbered version folders (``calling_score/1/model.onnx``,
``calling_score/2/model.onnx``; other names are ignored), with an optional labels file
beside them (:data:`LABELS_FILE`) naming versions (``stable: 1``) and pinning their sha256,
and a history file (:data:`HISTORY_FILE`) with one JSON line per label move. The scorer
that loads a version (the ``onnx`` scorer) and ``scoring models`` both read them here.

Public, as ``scoring_core.testing`` is: a scorer plugin serving model versions of its own
kind uses the same layout and labels file through these names.
"""

from scoring_core.models.labels import (
    HISTORY_FILE,
    LABEL_PATTERN,
    LABELS_FILE,
    LATEST,
    LabelMove,
    Labels,
    append_move,
    check_label_name,
    read_history,
    read_labels,
    rollback_target,
    version_folders,
    write_labels,
)
from scoring_core.models.overrides import with_step_version

__all__ = [
    "HISTORY_FILE",
    "LABELS_FILE",
    "LABEL_PATTERN",
    "LATEST",
    "LabelMove",
    "Labels",
    "append_move",
    "check_label_name",
    "read_history",
    "read_labels",
    "rollback_target",
    "version_folders",
    "with_step_version",
    "write_labels",
]

"""The ``onnx`` scorer: :class:`OnnxScorer`."""

from __future__ import annotations

import copy
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from scoring_core import ScorerContext
from scoring_core.models import version_folders
from scoring_onnx.errors import OnnxConfigError, OnnxLoadError, ScorerClosedError
from scoring_onnx.labels import class_labels
from scoring_onnx.metadata import (
    FEATURE_NAMES_KEY,
    MODEL_VERSION_KEY,
    check_feature_names,
    golden_rows,
    metadata_feature_names,
    scoring_metadata,
)
from scoring_onnx.model_file import (
    check_custom_op_library,
    check_model_file,
    explain_load_failure,
)
from scoring_onnx.options import OnnxOptions
from scoring_onnx.session import create_session, import_onnxruntime
from scoring_onnx.signature import column_input_names, plan_feed, plan_output
from scoring_onnx.staging import staged
from scoring_onnx.versions import VersionPlan, plan_versions, single_file_options

__all__ = ["OnnxScorer", "self_test_bound"]


def self_test_bound(ctx: ScorerContext, load_started: float) -> tuple[float, str] | None:
    """How long the embedded self-test may run: the step's timeout_ms (it is one call of
    the model), but no longer than what is left of its load_timeout_s since the load
    started (``load_started``, ``time.monotonic()``); None when the context sets neither."""
    bounds = []
    if ctx.timeout_s is not None:
        bounds.append((ctx.timeout_s, "the step's timeout_ms"))
    if ctx.load_timeout_s is not None:
        left = max(0.0, ctx.load_timeout_s - (time.monotonic() - load_started))
        bounds.append(
            (left, f"what was left of the step's load_timeout_s, {ctx.load_timeout_s:g} s")
        )
    return min(bounds) if bounds else None


class OnnxScorer:
    """Scores rows with an ONNX model through onnxruntime.

    Built by the engine as ``OnnxScorer(ctx)``; everything is loaded and checked here, and
    a failure raises :class:`~scoring_onnx.OnnxLoadError` whose message is the step's reason.
    ``score`` is safe to call from many threads at once.

    ``input_dtype`` is the element type the engine should check rows in: float64 for a
    model fed doubles (or wide integers), float32 otherwise.
    """

    @classmethod
    def feature_names(cls, options: Any, base_dir: Path) -> tuple[str, ...] | None:
        """The feature names the model gives, in order, for a config without ``features:``:
        its ``scoring_core.feature_names`` metadata, else its per-feature input names."""
        if not isinstance(options, OnnxOptions):
            options = OnnxOptions.model_validate(options)
        path = Path(options.model).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.is_dir():
            sha256 = options.sha256 if isinstance(options.sha256, str) else None
            return cls._names_in(path, sha256, options.max_model_bytes)
        # a folder of versions: the names of the first version, in the order tried, that opens
        errors: list[OnnxLoadError] = []
        for candidate in plan_versions(path, options).candidates:
            try:
                return cls._names_in(candidate.path, candidate.sha256, options.max_model_bytes)
            except OnnxLoadError as exc:
                errors.append(exc)
        raise errors[0]

    @staticmethod
    def _names_in(path: Path, sha256: str | None, max_bytes: int) -> tuple[str, ...] | None:
        model_file = check_model_file(path, sha256=sha256, max_bytes=max_bytes)
        ort = import_onnxruntime()
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            with staged(model_file, (), max_bytes) as (source, _):
                session = ort.InferenceSession(
                    source, session_options, providers=["CPUExecutionProvider"]
                )
        except Exception:
            explain_load_failure(path)
            raise
        metadata = dict(session.get_modelmeta().custom_metadata_map)
        names = metadata_feature_names(metadata, path)
        return names if names is not None else column_input_names(session)

    def __init__(self, ctx: ScorerContext) -> None:
        load_started = time.monotonic()
        options = ctx.options
        if not isinstance(options, OnnxOptions):
            options = OnnxOptions.model_validate(
                options, context={"feature_names": ctx.feature_names}
            )
        self.name = ctx.name
        self._session: Any = None
        self._run: Any = None
        self._local: threading.local | None = None
        path = ctx.resolve_path(options.model)
        self._versions: VersionPlan | None = None
        self._version: int | None = None
        if not path.is_dir():
            single_file_options(options, path)
            self._load(
                ctx,
                options,
                path,
                options.sha256 if isinstance(options.sha256, str) else None,
                load_started,
            )
            return
        self._versions = plan = plan_versions(path, options)
        failures: list[tuple[int, OnnxLoadError]] = []
        for candidate in plan.candidates:
            try:
                self._load(ctx, options, candidate.path, candidate.sha256, load_started)
                problem = None if ctx.self_test is None else ctx.self_test(self)
                if problem is not None:
                    raise OnnxLoadError(
                        f"model {candidate.path}: the step's {problem}", path=candidate.path
                    )
            except Exception as raised:
                self.close()
                # anything a version raises is that version's failure, not the step's
                exc = (
                    raised
                    if isinstance(raised, OnnxLoadError)
                    else OnnxLoadError(
                        f"model {candidate.path}: loading it raised "
                        f"{type(raised).__name__}: {raised}",
                        path=candidate.path,
                    )
                )
                failures.append((candidate.version, exc))
                if len(plan.candidates) > 1:
                    ctx.logger.warning(
                        "%s: version %d of %s is not served: %s",
                        ctx.name,
                        candidate.version,
                        path,
                        exc,
                        extra={"scoring_core_event": "model_version_failed"},
                    )
                continue
            self._version = candidate.version
            break
        if self._version is None:
            if len(failures) == 1:
                failures[0][1].version_failures = [(failures[0][0], str(failures[0][1]))]
                raise failures[0][1]
            config_errors = [exc for _, exc in failures if isinstance(exc, OnnxConfigError)]
            listed = "; ".join(f"version {v}: {exc}" for v, exc in failures)
            message = f"no version of {path} passed its checks ({listed})"
            error = (
                OnnxConfigError(message, path=path)
                if config_errors
                else OnnxLoadError(message, path=path)
            )
            error.version_failures = [(v, str(exc)) for v, exc in failures]
            raise error from (config_errors[0] if config_errors else failures[0][1])
        self._description.update(plan.describe())
        self._description["version"] = self._version
        self._description["version_failures"] = [
            {"version": v, "reason": str(exc)} for v, exc in failures
        ]
        if failures:
            ctx.logger.warning(
                "%s: serving version %d of %s; newer version(s) %s failed their checks "
                "(diagnostics: details.version_failures)",
                ctx.name,
                self._version,
                path,
                ", ".join(str(v) for v, _ in failures),
            )

    def _load(
        self,
        ctx: ScorerContext,
        options: OnnxOptions,
        path: Path,
        sha256: str | None,
        load_started: float,
    ) -> None:
        """Check and load the model file at ``path`` (pinned to ``sha256`` when given),
        run its own self-test (bounded by what is left of the step's load time since
        ``load_started``); set every attribute ``score`` uses."""
        model_file = check_model_file(path, sha256=sha256, max_bytes=options.max_model_bytes)
        libraries = [
            check_custom_op_library(ctx.resolve_path(lib.path), lib.sha256)
            for lib in options.custom_op_libraries
        ]
        ort = import_onnxruntime()
        try:
            with staged(model_file, libraries, options.max_model_bytes) as (source, paths):
                session, providers = create_session(ort, source, path, options, paths)
        except OnnxLoadError:
            explain_load_failure(path)
            raise
        feed = plan_feed(session, ctx.feature_names, path)
        plan = plan_output(
            session,
            path,
            output=options.output,
            class_label=options.class_,
            column=options.column,
            labels=class_labels(model_file.data),
        )
        metadata: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)
        # Per-feature inputs were matched by name: that is the check.
        names_checked = check_feature_names(metadata, ctx.feature_names, path) or feed.columns
        if not names_checked and options.require_feature_names:
            raise OnnxLoadError(
                f"model {path} does not name its features (no {FEATURE_NAMES_KEY} metadata, "
                "one input for all features) and the step sets require_feature_names: true. "
                "Write the names into it with `scoring models annotate MODEL --features FILE "
                "-o OUT`.",
                path=path,
            )

        self._session = session
        # InferenceSession.run re-validates the feed's names on every call; the signature
        # was checked once above, so call the native run with the same arguments when
        # this onnxruntime exposes it (it does from 1.x on), and the public one otherwise.
        native: Any = getattr(session, "_sess", None)
        self._run = native.run if callable(getattr(native, "run", None)) else session.run
        self._run_options_type: Any = ort.RunOptions
        # One row goes through an IOBinding per thread: the row is copied into a bound
        # buffer and the score read from a bound output, so onnxruntime neither converts a
        # feed nor allocates an output (measured: 3-6 us less per row). CPU only: that is
        # where the buffers live.
        self._local = (
            threading.local()
            if providers.active == ("CPUExecutionProvider",)
            and not feed.columns
            and feed.dtypes[0] in (np.dtype(np.float32), np.dtype(np.float64))
            and plan.bindable
            else None
        )
        self._feed = feed
        self._plan = plan
        self.input_dtype = feed.row_dtype
        self._output_rank = len(plan.shape)
        self._width = len(ctx.feature_names)
        self._files = (path, *model_file.external_files)
        # The common case, one matrix input already in the rows' type, skips feed().
        self._input_name = feed.names[0] if not feed.columns else None
        self._input_dtype = feed.dtypes[0]
        self._output_names = [plan.name]
        self._extract = plan.extract
        self._chunk_rows = feed.fixed_batch or options.max_batch_rows
        self._output_dtype = plan.dtype
        self._description: dict[str, Any] = {
            "path": str(path),
            "sha256": model_file.sha256,
            "sha256_pinned": sha256 is not None,
            "size_bytes": model_file.size,
            "external_data_bytes": model_file.external_bytes,
            "external_data_checked": model_file.inspected,
            "model_version": metadata.get(MODEL_VERSION_KEY),
            "metadata": scoring_metadata(metadata),
            "onnxruntime_version": str(ort.__version__),
            "providers_requested": list(providers.requested),
            "providers_active": list(providers.active),
            "providers_dropped": list(providers.dropped),
            "input": feed.describe(),
            "output": plan.describe(),
            "feature_names_checked": names_checked,
            "max_batch_rows": self._chunk_rows,
            "intra_op_threads": options.intra_op_threads,
            "inter_op_threads": options.inter_op_threads,
            "graph_optimization_level": options.graph_optimization_level,
        }
        self._description["self_test"] = self._run_self_test(
            metadata, len(ctx.feature_names), path, self_test_bound(ctx, load_started)
        )
        if providers.dropped:
            ctx.logger.warning(
                "%s: onnxruntime dropped requested provider(s) %s; running on %s",
                ctx.name,
                ", ".join(providers.dropped),
                ", ".join(providers.active),
            )
        if not names_checked:
            ctx.logger.warning(
                "%s: %s does not name its features, so their order could not be "
                "checked (only their number, %d): rows in another order than the model was "
                "trained on would be scored wrong. Write the names into the model with "
                "`scoring models annotate`, or set require_feature_names: true to refuse "
                "such a model.",
                ctx.name,
                path,
                len(ctx.feature_names),
                extra={"scoring_core_event": "feature_names_unchecked"},
            )
        ctx.logger.info(
            "%s: loaded %s (sha256 %s, version %s) on %s",
            ctx.name,
            path,
            model_file.sha256,
            self._description["model_version"],
            ", ".join(providers.active),
        )

    def score(
        self, X: npt.NDArray[np.floating[Any]], /, run_options: Any = None
    ) -> npt.NDArray[np.floating[Any]]:
        """Score a C-contiguous array of shape (n, F) (float32 or float64, converted to
        the model's input types); return shape (n,).

        ``run_options`` is an ``onnxruntime.RunOptions`` passed to every onnxruntime call
        of this batch (setting its ``terminate`` cancels the rest of the batch).
        """
        run = self._run  # taken once: a call in flight finishes even if close() runs meanwhile
        if run is None:
            raise self._closed_error()
        n = X.shape[0]
        local = self._local
        if n == 1 and local is not None:
            return self._score_one(local, X, run_options)
        chunk = self._chunk_rows
        if 0 < n <= chunk:
            return self._extract(run(self._output_names, self._feeds(X), run_options)[0], n)
        scores = np.empty(n, dtype=self._output_dtype)
        for start in range(0, n, chunk):
            part = X[start : start + chunk]
            result = run(self._output_names, self._feeds(part), run_options)[0]
            scores[start : start + part.shape[0]] = self._extract(result, part.shape[0])
        return scores

    def _feeds(self, X: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
        name = self._input_name
        if name is not None and X.dtype == self._input_dtype:
            return {name: X}
        return self._feed.feeds(X)

    def _score_one(
        self, local: threading.local, X: npt.NDArray[np.floating[Any]], run_options: Any
    ) -> npt.NDArray[np.floating[Any]]:
        """One row through this thread's IOBinding (made at the thread's first row)."""
        try:
            row, score, binding, run_bound = local.bound
        except AttributeError:
            row, score, binding, run_bound = local.bound = self._bind_one_row()
        row[...] = X
        run_bound(binding, run_options)
        result: npt.NDArray[np.floating[Any]] = score.copy()  # the buffer is reused
        return result

    def _bind_one_row(self) -> tuple[npt.NDArray[Any], npt.NDArray[Any], Any, Any]:
        """A (1, F) input buffer and a one-score output buffer bound to the session (as
        a 1-D view of shape (1,)), and the session's run for them (kept, so a close()
        meanwhile cannot pull it away)."""
        session = self._session
        if session is None:
            raise self._closed_error()
        row = np.zeros((1, self._width), dtype=self._input_dtype)
        shape = [1] * self._output_rank
        score = np.zeros(shape, dtype=self._output_dtype)
        binding = session.io_binding()
        binding.bind_cpu_input(self._feed.names[0], row)
        binding.bind_output(
            self._output_names[0], "cpu", 0, self._output_dtype, shape, score.ctypes.data
        )
        # The public InferenceSession.run_with_iobinding looks up a graph-capture entry in
        # the RunOptions, which raises and catches inside onnxruntime: 40-70 us per call
        # with a RunOptions (measured with 1.32). The native method takes the same
        # arguments without that lookup; use it when this onnxruntime has it.
        native = getattr(getattr(session, "_sess", None), "run_with_iobinding", None)
        inner = getattr(binding, "_iobinding", None)
        if callable(native) and inner is not None:
            return row, score.reshape(1), inner, native
        return row, score.reshape(1), binding, session.run_with_iobinding

    def _closed_error(self) -> ScorerClosedError:
        return ScorerClosedError(
            f"the onnx scorer of step {self.name!r} is closed; it cannot score any more"
        )

    def _run_self_test(
        self, metadata: dict[str, str], width: int, path: Path, bound: tuple[float, str] | None
    ) -> str:
        """Score the golden rows the model carries; refuse the model if it misses them.

        ``bound`` is (seconds, what sets them): past it the run's ``RunOptions.terminate``
        is set, onnxruntime stops at the end of the node it is in, and the model is refused.
        """
        golden = golden_rows(metadata, width, path)
        if golden is None:
            return "none in the model"
        rows, expected, tolerance = golden
        run_options = self._run_options_type()
        timer = None
        if bound is not None:
            timer = threading.Timer(bound[0], setattr, (run_options, "terminate", True))
            timer.daemon = True
            timer.start()
        try:
            scores = self.score(np.asarray(rows, dtype=self.input_dtype), run_options)
        except Exception as exc:
            if bound is None or not run_options.terminate:
                raise
            raise OnnxLoadError(
                f"model {path}: its embedded self-test ({len(rows)} golden rows) did not finish "
                f"within {bound[0] * 1e3:g} ms ({bound[1]}); onnxruntime was told to stop it "
                "(RunOptions.terminate) and the model is refused. Score fewer or cheaper "
                "golden rows, or raise the bound.",
                path=path,
            ) from exc
        finally:
            if timer is not None:
                timer.cancel()
        got = scores.astype(np.float64)
        misses = [
            f"row {i}: expected {want:.6g}, got {have:.6g}"
            for i, (want, have) in enumerate(zip(expected, got.tolist(), strict=True))
            if not abs(want - have) <= tolerance
        ]
        if misses:
            raise OnnxLoadError(
                f"model {path} failed its self-test: {len(misses)} of {len(rows)} golden rows "
                f"differ by more than {tolerance:g} ({'; '.join(misses[:5])}). The file or the "
                "onnxruntime build gives other answers than when the model was exported.",
                path=path,
            )
        return f"passed ({len(rows)} rows, tolerance {tolerance:g})"

    def watched_files(self) -> tuple[Path, ...]:
        """The model file and its external data, for the engine's ``watch:``; for a folder
        of versions also the folder, its labels file and every version folder (listed now),
        so a new version, a new file in one, or a label move triggers a reload."""
        if self._versions is None:
            return self._files
        root = self._versions.model_dir
        listed = tuple(version_folders(root).values())
        return (root, self._versions.labels_file, *listed, *self._files)

    def model_identity(self) -> dict[str, str | None]:
        """The version served (the folder's number, else the file's own version) and the
        model file's sha256, for every score's provenance."""
        version = (
            str(self._version)
            if self._version is not None
            else self._description.get("model_version")
        )
        return {"model_version": version, "model_sha256": self._description.get("sha256")}

    def cancel_token(self) -> Any:
        """A fresh ``onnxruntime.RunOptions`` for one call (the engine's timeout protocol)."""
        return self._run_options_type()

    def cancel(self, token: Any) -> None:
        """Stop the call that was given ``token``: onnxruntime checks it between nodes."""
        token.terminate = True

    def describe(self) -> dict[str, Any]:
        """What was loaded, as a JSON-serialisable dict for the engine's diagnostics."""
        description = copy.deepcopy(self._description)
        description["closed"] = self._session is None
        return description

    def close(self) -> None:
        """Release the session; later ``score`` calls raise :class:`ScorerClosedError`."""
        self._run = None
        self._local = None  # every thread's binding goes with it
        self._session = None

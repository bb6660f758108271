"""Apache Beam: explain on many machines with ``apache_beam.ml.inference.RunInference``.

Needs the ``beam`` extra (``pip install 'tf_lrp[beam]'``); ``import tf_lrp`` never imports
Beam. :class:`ExplainerModelHandler` loads a network saved with :meth:`tf_lrp.Explainer.save`
once per worker (``load_model``), lets Beam batch the elements (``BatchElements`` with
``min_batch_size`` / ``max_batch_size``) and explains each batch with one compiled call::

    handler = KeyedModelHandler(ExplainerModelHandler("net.npz", max_batch_size=256))
    keyed_sequences | RunInference(handler) | beam.Map(to_record)

An element is one sequence: a (T, D) float array, a (T,) array of token ids, or a mapping with
``"x"`` and optional ``"length"`` (valid steps of a post-padded sequence) and ``"target"``.
Sequences of a batch may have different T: they are post-padded to the longest and explained
with per-sample lengths, so each is explained exactly as on its own. Each result is a
``PredictionResult(example, inference=Explained(...))``; :func:`to_record` turns a keyed
result into a ``(key, scores, relevance)`` record. See ``docs/scaling.md``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from .errors import InputError
from .explainer import Explainer


class Explained(NamedTuple):
    """The explanation of one sequence (numpy arrays)."""

    relevance: np.ndarray  # (T, D) with the element's own T
    scores: np.ndarray  # (C,)
    target: int
    initial_state_relevance: float


class ExplainerModelHandler(ModelHandler[Any, PredictionResult, Explainer]):
    """A ``ModelHandler`` that explains sequences with a saved tf_lrp network.

    Args:
        model_path: a ``.npz`` written by :meth:`tf_lrp.Explainer.save`, read by every
            worker (see :func:`load_explainer`): a local path the workers see, or a path on
            any file system Beam knows (``gs://``, ``s3://``, ``hdfs://``, ...).
        method: one of ``tf_lrp.METHODS``.
        target: None (each sequence's predicted class) or an int; an element's ``"target"``
            overrides it.
        eps: LRP stabiliser ε ≥ 0.
        bias_factor: LRP bias share in [0, 1].
        dtype: None (the dtype stored in the file), ``"float32"`` or ``"float64"``.
        min_batch_size: Beam's smallest batch.
        max_batch_size: Beam's largest batch (one compiled call).
        **batching: other ``ModelHandler`` arguments (``max_batch_duration_secs``,
            ``batch_length_fn``, ``batch_bucket_boundaries``, ``model_copies``, ...).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        method: str = "lrp",
        target: int | None = None,
        eps: float = 1e-3,
        bias_factor: float = 0.0,
        dtype: str | None = None,
        min_batch_size: int = 1,
        max_batch_size: int = 256,
        **batching: Any,
    ) -> None:
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size, **batching)
        self.model_path = os.fspath(model_path)
        self.method = method
        self.target = target
        self.eps = eps
        self.bias_factor = bias_factor
        self.dtype = dtype

    def load_model(self) -> Explainer:
        """Load the network (once per worker process; Beam shares it between bundles).

        Returns:
            The explainer.
        """
        return load_explainer(self.model_path, dtype=self.dtype)

    def update_model_path(self, model_path: str | None = None) -> None:
        """Point the handler at another saved network (Beam's model-update side input).

        Args:
            model_path: the new network ``.npz`` (None keeps the current one).
        """
        if model_path:
            self.model_path = os.fspath(model_path)

    def run_inference(
        self, batch: Sequence[Any], model: Explainer, inference_args: dict[str, Any] | None = None
    ) -> Iterable[PredictionResult]:
        """Explain one batch with one call of ``model.explain``.

        Args:
            batch: elements (see the module docstring).
            model: the loaded :class:`~tf_lrp.Explainer`.
            inference_args: scalar options for ``explain`` (``steps``, ``seed``, ...).

        Returns:
            One ``PredictionResult(example, Explained)`` per element, in order.
        """
        x, lengths, targets, steps = _stack(batch, model, self.target)
        explanation = model.explain(
            x, targets, self.method, self.eps, self.bias_factor, lengths=lengths, batch_size=len(x),
            **(inference_args or {}),
        )  # fmt: skip
        return [
            PredictionResult(  # type: ignore[no-untyped-call]  # Beam ships no types
                example,
                Explained(
                    explanation.relevance[i, : steps[i]],
                    explanation.scores[i],
                    int(explanation.target[i]),
                    float(explanation.initial_state_relevance[i]),
                ),
            )
            for i, example in enumerate(batch)
        ]

    def get_num_bytes(self, batch: Sequence[Any]) -> int:
        """Bytes of the sequences of a batch (for Beam's metrics).

        Args:
            batch: the sequences of one batch.

        Returns:
            Their total size in bytes.
        """
        return int(sum(np.asarray(_unpack(e)[0]).nbytes for e in batch))

    def get_metrics_namespace(self) -> str:
        """Beam metrics namespace of this handler.

        Returns:
            The namespace.
        """
        return "tf_lrp"

    def validate_inference_args(self, inference_args: dict[str, Any] | None) -> None:
        """Only scalar options may be passed to ``explain``.

        Args:
            inference_args: the options for ``explain`` (``method``, ``eps``, ...).

        Raises:
            InputError: for a non-scalar option.
        """
        for key, value in (inference_args or {}).items():
            if not isinstance(value, (int, float, str, type(None))):
                raise InputError(f"inference_args passes only scalar options to explain; {key}= is {type(value)}")


def load_explainer(path: str | os.PathLike[str], **options: Any) -> Explainer:
    """:meth:`Explainer.load` for any path Beam can read.

    A local path (no ``scheme://``) is loaded in place. Any other path (``gs://b/net.npz``,
    ``s3://...``, ``hdfs://...``: whatever ``apache_beam.io.filesystems.FileSystems`` knows on
    the worker) is copied through ``FileSystems.open`` into a temporary local file, loaded,
    and the file removed.

    Args:
        path: the ``.npz`` written by :meth:`Explainer.save`.
        **options: passed to :meth:`Explainer.load` (``dtype``, ...).

    Returns:
        The loaded explainer.

    Raises:
        InputError: if the file cannot be read (missing, unknown file system) or is not a
            tf_lrp network file.
    """
    path = os.fspath(path)
    if FileSystems.get_scheme(path) is None:  # type: ignore[no-untyped-call]
        return Explainer.load(path, **options)
    with tempfile.TemporaryDirectory(prefix="tf_lrp-model-") as directory:
        local = Path(directory) / "net.npz"
        try:
            with (
                FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as source,
                local.open("wb") as target,
            ):
                shutil.copyfileobj(source, target, 1 << 20)
        except (OSError, ValueError) as exc:  # BeamIOError is an OSError; an unknown scheme a ValueError
            raise InputError(
                f"cannot read the network {path!r} through Beam's FileSystems ({exc}); check the path and "
                "that the worker has the file system's extra installed (e.g. apache-beam[gcp] for gs://)"
            ) from exc
        try:
            return Explainer.load(local, **options)
        except InputError as exc:
            raise InputError(f"{path!r} (copied to a local temporary file): {exc}") from exc


def to_record(keyed: tuple[Any, PredictionResult]) -> tuple[Any, np.ndarray, np.ndarray]:
    """``(key, PredictionResult)`` from a ``KeyedModelHandler`` -> ``(key, scores, relevance)``.

    Args:
        keyed: ``(key, PredictionResult)`` whose inference is an :class:`Explained`.

    Returns:
        ``(key, scores, relevance)``.
    """
    key, result = keyed
    inference: Any = result.inference  # an Explained (Beam's PredictionResult is untyped)
    return key, inference.scores, inference.relevance


def _unpack(element: Any) -> tuple[Any, int | None, int | None]:
    if isinstance(element, Mapping):
        if "x" not in element:
            raise InputError(f"a mapping element needs the sequence under 'x'; got keys {sorted(element)}")
        return element["x"], element.get("length"), element.get("target")
    return element, None, None


def _stack(
    batch: Sequence[Any], model: Explainer, default_target: int | None
) -> tuple[np.ndarray, np.ndarray | None, Any, list[int]]:
    """Post-pad a batch of sequences to its longest; lengths where they differ."""
    embedding = model.layout.embedding
    tokens = embedding is not None
    rank = 1 if tokens else 2
    arrays, lengths, targets = [], [], []
    for number, element in enumerate(batch):
        x, length, given = _unpack(element)
        x = np.asarray(x)
        if x.ndim != rank or x.shape[0] == 0:
            what = "(T,) token ids" if tokens else f"(T, {model.layout.input_size}) features"
            raise InputError(f"element {number} of the batch must be one sequence of {what}; got shape {x.shape}")
        arrays.append(x)
        lengths.append(x.shape[0] if length is None else int(length))
        targets.append(default_target if given is None else int(given))
    steps = [a.shape[0] for a in arrays]
    longest = max(steps)
    x = np.stack([np.pad(a, [(0, longest - a.shape[0])] + [(0, 0)] * (a.ndim - 1)) for a in arrays])
    explicit = any(isinstance(e, Mapping) and e.get("length") is not None for e in batch)
    ragged = len(set(steps)) > 1 and not (embedding is not None and embedding.mask_zero)
    valid = np.asarray(lengths, dtype=np.int64) if explicit or ragged else None
    if all(t is None for t in targets):
        target: Any = None
    elif any(t is None for t in targets):
        raise InputError("give every element a 'target' or none (or set the handler's target=)")
    else:
        target = np.asarray(targets, dtype=np.int64)
    return x, valid, target, steps


__all__ = ["Explained", "ExplainerModelHandler", "load_explainer", "to_record"]

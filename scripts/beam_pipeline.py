"""Explain .npy or TFRecord shards with Apache Beam: one results .npz per input shard.

    python scripts/beam_pipeline.py --model net.npz --input 'data/shard-*.npy' --output results/ \
        [--method lrp] [--max-batch-size 256] [Beam options, e.g. --runner DataflowRunner ...]

A ``.npy`` shard holds an (N, T, D) float array (or (N, T) token ids). Any other shard (e.g.
``*.tfrecord``, ``*.tfrecord.gz``) is read as TFRecords of ``tf.train.Example``, one sequence
each: ``x`` (float_list, or int64_list for token ids) the flattened sequence, ``shape``
(int64_list) its shape ``[T, D]`` or ``[T]``, optional ``length`` (int64, valid steps of a
post-padded sequence) and optional ``target`` (int64). Compression follows the file
extension (``.gz``, ``.bz2``, ...). The output directory gets ``<shard name>.explained.npz`` per
shard with ``index`` (record in the shard), ``scores`` (N, C), ``relevance`` (N, T, D) (zero
padded to the shard's longest T when records differ in T), ``target`` (N,) and
``initial_state_relevance`` (N,), in shard order; each file is written under a temporary name
and renamed, so a file that exists is complete. Paths, ``--model`` included, may be on any file
system Beam knows (gs://, s3://, hdfs://). See docs/scaling.md for Dataflow, Flink and Spark.
"""

from __future__ import annotations

import argparse
import io
import posixpath
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from tf_lrp.beam import ExplainerModelHandler


def read_shard(path: str) -> Iterator[tuple[tuple[str, int], Any]]:
    """Yield ((shard name, row), element) for every sequence of one .npy or TFRecord shard."""
    if path.endswith(".npy"):
        with FileSystems.open(path) as handle:
            array = np.load(io.BytesIO(handle.read()), allow_pickle=False)
        name = shard_name(path)
        for row in range(array.shape[0]):
            yield (name, row), array[row]
        return
    name = shard_name(path)
    for row, record in enumerate(read_tfrecords(path)):
        yield (name, row), parse_example(record, f"{path} record {row}")


def shard_name(path: str) -> str:
    """The file name without ``.npy`` / ``.tfrecord[s]`` and a compression extension."""
    name = posixpath.basename(path)
    for suffix in (".gz", ".bz2", ".deflate", ".zst", ".lzma", ".npy", ".tfrecords", ".tfrecord"):
        name = name.removesuffix(suffix)
    return name


def read_tfrecords(path: str) -> list[bytes]:
    """The serialized records of one TFRecord file on any Beam file system (CRCs checked by TF).

    The file goes through ``FileSystems.open`` (which decompresses by extension) into a local
    temporary file that ``tf.data.TFRecordDataset`` reads.
    """
    import tensorflow as tf

    with tempfile.NamedTemporaryFile(suffix=".tfrecord") as local:
        with FileSystems.open(path) as handle:
            while chunk := handle.read(1 << 20):
                local.write(chunk)
        local.flush()
        return list(tf.data.TFRecordDataset(local.name).as_numpy_iterator())


def parse_example(record: bytes, where: str) -> Any:
    """One ``tf.train.Example`` (``x``, ``shape``, optional ``length``/``target``) -> an element."""
    import tensorflow as tf

    features = tf.train.Example.FromString(record).features.feature
    missing = [key for key in ("x", "shape") if key not in features]
    if missing:
        raise ValueError(f"{where}: a tf.train.Example needs the features 'x' and 'shape'; missing {missing}")
    x = features["x"]
    values = (
        np.asarray(x.int64_list.value, dtype=np.int64)
        if x.WhichOneof("kind") == "int64_list"
        else np.asarray(x.float_list.value, dtype=np.float32)
    )
    shape = [int(n) for n in features["shape"].int64_list.value]
    if int(np.prod(shape)) != values.size:
        raise ValueError(f"{where}: 'x' has {values.size} values, which does not fit 'shape' {shape}")
    element: dict[str, Any] = {"x": values.reshape(shape)}
    for key in ("length", "target"):
        if key in features and features[key].int64_list.value:
            element[key] = int(features[key].int64_list.value[0])
    return element if len(element) > 1 else element["x"]


def write_shard(item: tuple[str, Any], output: str) -> str:
    """Stack one shard's results in row order and write them atomically (temp name + rename)."""
    name, records = item
    records = sorted(records, key=lambda record: record[0][1])
    relevances = [result.inference.relevance for _, result in records]
    longest = max(r.shape[0] for r in relevances)
    arrays = {
        "index": np.asarray([key[1] for key, _ in records], dtype=np.int64),
        "scores": np.stack([result.inference.scores for _, result in records]),
        "relevance": np.stack([np.pad(r, [(0, longest - r.shape[0])] + [(0, 0)] * (r.ndim - 1)) for r in relevances]),
        "target": np.asarray([result.inference.target for _, result in records], dtype=np.int64),
        "initial_state_relevance": np.asarray([result.inference.initial_state_relevance for _, result in records]),
    }
    final = FileSystems.join(output, f"{name}.explained.npz")
    temporary = FileSystems.join(output, f".{name}.{uuid.uuid4().hex}.tmp")
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with FileSystems.create(temporary) as handle:
        handle.write(buffer.getvalue())
    FileSystems.rename([temporary], [final])
    return final


def build(pipeline: beam.Pipeline, args: argparse.Namespace) -> Any:
    """Add the read -> explain -> write steps to ``pipeline``; returns the written paths."""
    paths = [metadata.path for metadata in FileSystems.match([args.input])[0].metadata_list]
    if not paths:
        raise SystemExit(f"no input shards match {args.input!r}")
    handler = KeyedModelHandler(
        ExplainerModelHandler(
            args.model,
            method=args.method,
            target=args.target,
            eps=args.eps,
            bias_factor=args.bias_factor,
            min_batch_size=args.min_batch_size,
            max_batch_size=args.max_batch_size,
        )
    )
    return (
        pipeline
        | "Shards" >> beam.Create(sorted(paths))
        | "Read" >> beam.FlatMap(read_shard)
        | "Explain" >> RunInference(handler)
        | "ByShard" >> beam.GroupBy(lambda keyed: keyed[0][0])
        | "Write" >> beam.Map(write_shard, output=args.output)
    )


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="network .npz written by Explainer.save")
    parser.add_argument("--input", required=True, help="glob of .npy or TFRecord shards")
    parser.add_argument("--output", required=True, help="directory for the results shards")
    parser.add_argument("--method", default="lrp")
    parser.add_argument("--target", type=int, default=None, help="class to explain (default: the predicted one)")
    parser.add_argument("--eps", type=float, default=1e-3)
    parser.add_argument("--bias-factor", type=float, default=0.0)
    parser.add_argument("--min-batch-size", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=256)
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> None:
    args, beam_args = parse(argv)
    with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
        build(pipeline, args)


if __name__ == "__main__":
    main()

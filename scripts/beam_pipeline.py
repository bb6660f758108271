"""Explain .npy shards with Apache Beam: one results .npz per input shard.

    python scripts/beam_pipeline.py --model net.npz --input 'data/shard-*.npy' --output results/ \
        [--method lrp] [--max-batch-size 256] [Beam options, e.g. --runner DataflowRunner ...]

Each input shard holds an (N, T, D) float array (or (N, T) token ids). The output directory gets
``<shard name>.explained.npz`` per shard with ``index`` (row in the shard), ``scores`` (N, C),
``relevance`` (N, T, D), ``target`` (N,) and ``initial_state_relevance`` (N,), rows in shard
order; each file is written under a temporary name and renamed, so a file that exists is
complete. Paths may be on any file system Beam knows (gs://, s3://, hdfs://). See
docs/scaling.md for Dataflow, Flink and Spark.
"""

from __future__ import annotations

import argparse
import io
import posixpath
import uuid
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
from apache_beam.options.pipeline_options import PipelineOptions

from tf_lrp.beam import ExplainerModelHandler


def read_shard(path: str) -> Iterator[tuple[tuple[str, int], np.ndarray]]:
    """Yield ((shard name, row), sequence) for every row of one .npy shard."""
    with FileSystems.open(path) as handle:
        array = np.load(io.BytesIO(handle.read()), allow_pickle=False)
    name = posixpath.basename(path).removesuffix(".npy")
    for row in range(array.shape[0]):
        yield (name, row), array[row]


def write_shard(item: tuple[str, Any], output: str) -> str:
    """Stack one shard's results in row order and write them atomically (temp name + rename)."""
    name, records = item
    records = sorted(records, key=lambda record: record[0][1])
    arrays = {
        "index": np.asarray([key[1] for key, _ in records], dtype=np.int64),
        "scores": np.stack([result.inference.scores for _, result in records]),
        "relevance": np.stack([result.inference.relevance for _, result in records]),
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
    parser.add_argument("--input", required=True, help="glob of .npy shards")
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

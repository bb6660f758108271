"""Fault injection: no data loss, ever (issue 14).

Each reproduction of the issue as a test: outputs that are inputs, clobbered companions, two
writers, damaged files on resume, a full disk, damaged and hostile input files, numeric blow-up,
misleading messages. Every refusal must be one clear error and leave every existing file
byte-identical; every crash must resume to the bytes of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf_lrp import Explainer, InputError, _io, cli, conservation, dataset, resumable
from tf_lrp.errors import ConversionError, TfLrpWarning
from tf_lrp.explainer import MANIFEST_KEY

D, H, C, T, N = 3, 4, 2, 6, 40
BATCH = 8
NAMES = ("rel.npy", "rel.scores.npy", "rel.targets.npy", "rel.initial_state.npy", "rel.json")


def weights(seed: int = 0, scale: float = 1.0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = [
        rng.normal(0, 0.5, (D, 4 * H)),
        rng.normal(0, 0.5, (H, 4 * H)),
        rng.normal(0, 0.2, (4 * H,)),
        rng.normal(0, 0.5, (H, C)),
        rng.normal(0, 0.1, (C,)),
    ]
    return [a * scale for a in arrays]


@pytest.fixture(scope="module")
def ex() -> Explainer:
    """A float64 LSTM on (B, T, 3) features."""
    return Explainer.from_weights(weights(), cell="lstm", dtype="float64")


@pytest.fixture(scope="module")
def root(tmp_path_factory, ex) -> Path:
    """net.npz, x.npy, xz.npz (with lengths, so chunks hold scattered rows) and reference runs."""
    directory = tmp_path_factory.mktemp("faults")
    ex.save(directory / "net.npz")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(N, T, D))
    lengths = rng.integers(1, T + 1, size=N)
    np.save(directory / "x.npy", x)
    np.savez(directory / "xz.npz", x=x, lengths=lengths)
    for name, source in (("ref", "x.npy"), ("refz", "xz.npz")):
        (directory / name).mkdir()
        ex.explain_dataset(str(directory / source), out=directory / name / "rel.npy", batch_size=BATCH, progress=False)
    return directory


def run(argv: list) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main([str(a) for a in argv], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def one_line_error(result: tuple[int, str, str], command: str, pattern: str) -> str:
    code, _, stderr = result
    lines = stderr.strip().splitlines()
    assert code == 2, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"tf-lrp {command}: error: "), lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in stderr
    return lines[0]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def crash_after(monkeypatch, chunks: int) -> None:
    """Make the run die (KeyboardInterrupt) when it starts chunk number ``chunks``."""
    original = dataset._run_chunk
    done = []

    def crashing(*args):
        if len(done) == chunks:
            raise KeyboardInterrupt
        done.append(1)
        return original(*args)

    monkeypatch.setattr(dataset, "_run_chunk", crashing)


def partial_run(ex: Explainer, root: Path, directory: Path, monkeypatch, chunks: int = 3, data: str = "x.npy") -> None:
    with monkeypatch.context() as patch:
        crash_after(patch, chunks)
        with pytest.raises(KeyboardInterrupt):
            ex.explain_dataset(str(root / data), out=directory / "rel.npy", batch_size=BATCH, progress=False)
    assert json.loads((directory / "rel.json").read_text())["completed"] == chunks * BATCH


def assert_reference(directory: Path, reference: Path) -> None:
    for name in NAMES[:4]:
        assert (directory / name).read_bytes() == (reference / name).read_bytes(), name


# --------------------------------------------------------------------------------------------
# 1, 2: never write over an input, never clobber a companion file


def test_an_output_that_is_the_input_is_refused_even_with_overwrite(ex, root, tmp_path):
    same = tmp_path / "same.npy"
    shutil.copy(root / "x.npy", same)
    before = snapshot(tmp_path)
    one_line_error(run(["explain", root / "net.npz", same, "-o", same, "--overwrite"]), "explain", "is the input data")
    with pytest.raises(InputError, match="is the input data"):
        ex.explain_dataset(str(same), out=same, resume=False, progress=False)
    with pytest.raises(InputError, match="is the input data"):  # a memory-mapped array knows its file
        ex.explain_dataset(np.load(same, mmap_mode="r"), out=same, resume=False, progress=False)
    os.link(same, tmp_path / "link.npy")  # the same file under another name
    before["link.npy"] = before["same.npy"]
    one_line_error(run(["explain", root / "net.npz", same, "-o", tmp_path / "link.npy", "--overwrite"]), "explain",
                   "is the input data")  # fmt: skip
    # the input is a companion file of the output: data.scores.npy for -o data.npy
    shutil.copy(root / "x.npy", tmp_path / "data.scores.npy")
    before["data.scores.npy"] = before["same.npy"]
    message = one_line_error(
        run(["explain", root / "net.npz", tmp_path / "data.scores.npy", "-o", tmp_path / "data.npy", "--overwrite"]),
        "explain", "data.scores.npy' is the input data",
    )  # fmt: skip
    assert "choose another output name" in message
    assert snapshot(tmp_path) == before


def test_companion_files_are_never_clobbered(ex, root, tmp_path):
    (tmp_path / "rel.targets.npy").write_text("notes\n")
    before = snapshot(tmp_path)
    one_line_error(
        run(["explain", root / "net.npz", root / "x.npy", "-o", tmp_path / "rel.npy"]),
        "explain", r"rel\.targets\.npy' exists: pass --resume to continue that run or --overwrite",
    )  # fmt: skip
    with pytest.raises(InputError, match=r"rel\.targets\.npy' exists but has no sidecar .*resume=False"):
        ex.explain_dataset(str(root / "x.npy"), out=tmp_path / "rel.npy", progress=False)
    one_line_error(run(["explain", root / "net.npz", root / "x.npy", "-o", tmp_path / "rel.npy", "--resume"]),
                   "explain", r"exists but has no sidecar .*pass --overwrite to replace it")  # fmt: skip
    assert snapshot(tmp_path) == before
    # a file named like the lock that is not a lock is not touched, even with --overwrite
    (tmp_path / "other.lock").write_text("my notes\n")
    before = snapshot(tmp_path)
    one_line_error(run(["explain", root / "net.npz", root / "x.npy", "-o", tmp_path / "other.npy", "--overwrite"]),
                   "explain", "is not a tf_lrp lock file")  # fmt: skip
    assert snapshot(tmp_path) == before
    # asked to, --overwrite replaces the companions
    code, _, stderr = run(["explain", root / "net.npz", root / "x.npy", "-o", tmp_path / "rel.npy", "--overwrite",
                           "--batch-size", BATCH, "--no-progress"])  # fmt: skip
    assert (code, stderr) == (0, "")
    assert_reference(tmp_path, root / "ref")


# --------------------------------------------------------------------------------------------
# 3: one writer


def test_a_second_writer_is_refused_while_the_lock_is_held(ex, root, tmp_path):
    out = tmp_path / "rel.npy"
    ex.explain_dataset(str(root / "x.npy"), out=out, batch_size=BATCH, progress=False)
    assert not (tmp_path / "rel.lock").exists()  # removed when the run ends
    before = snapshot(tmp_path)
    # flock locks are per open file: a second open in this process is a second writer
    with resumable.Lock(tmp_path / "rel.lock", out):
        held = f"is being written by process {os.getpid()}"
        with pytest.raises(InputError, match=f"{held}.*even with --overwrite"):
            ex.explain_dataset(str(root / "x.npy"), out=out, batch_size=BATCH, progress=False, resume=False)
        with pytest.raises(InputError, match=held):
            ex.explain_dataset(str(root / "x.npy"), out=out, batch_size=BATCH, progress=False)
        one_line_error(run(["explain", root / "net.npz", root / "x.npy", "-o", out, "--overwrite"]), "explain", held)
        assert {k: v for k, v in snapshot(tmp_path).items() if k != "rel.lock"} == before
    assert snapshot(tmp_path) == before


CHILD = textwrap.dedent(
    """
    import sys, time
    from tf_lrp import Explainer, dataset, resumable
    resumable.CHECKPOINT_SECONDS = 0.0  # record every chunk
    original = dataset._run_chunk
    def slow(*args):
        time.sleep(0.1)
        return original(*args)
    dataset._run_chunk = slow
    Explainer.load(sys.argv[1]).explain_dataset(sys.argv[2], out=sys.argv[3], batch_size=4, progress=False)
    """
)


def test_sigkill_then_resume_is_byte_identical_and_a_live_run_is_never_overwritten(ex, root, tmp_path):
    out = tmp_path / "rel.npy"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, root / "net.npz", root / "xz.npz", out], env=env)
    try:
        deadline = time.monotonic() + 120
        completed = 0
        while time.monotonic() < deadline and child.poll() is None and completed < 8:
            with_sidecar = (tmp_path / "rel.json").is_file()
            completed = json.loads((tmp_path / "rel.json").read_text())["completed"] if with_sidecar else 0
            time.sleep(0.02)
        assert child.poll() is None, "the child finished before it could be killed"
        # a second writer, even with --overwrite, is refused while the child runs
        held = f"is being written by process {child.pid}"
        with pytest.raises(InputError, match=held):
            ex.explain_dataset(str(root / "xz.npz"), out=out, batch_size=4, progress=False, resume=False)
        one_line_error(run(["explain", root / "net.npz", root / "xz.npz", "-o", out, "--overwrite"]), "explain", held)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    partial = json.loads((tmp_path / "rel.json").read_text())["completed"]
    assert 0 < partial < N
    assert (tmp_path / "rel.lock").exists()  # left by the killed run; the next one takes it over
    resumed = ex.explain_dataset(str(root / "xz.npz"), out=out, batch_size=4, progress=False)
    assert resumed.resumed_from == partial
    whole = tmp_path / "whole"
    whole.mkdir()
    ex.explain_dataset(str(root / "xz.npz"), out=whole / "rel.npy", batch_size=4, progress=False)
    assert_reference(tmp_path, whole)
    assert not (tmp_path / "rel.lock").exists()


# --------------------------------------------------------------------------------------------
# 4: resume verifies what it trusts


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: os.truncate(d / "rel.npy", 1000), r"rel\.npy' holds 1,000 bytes, the run allocated"),
        (lambda d: _append(d / "rel.scores.npy", b"\0" * 8), r"rel\.scores\.npy' holds .* bytes"),
        (lambda d: (d / "rel.targets.npy").unlink(), r"rel\.targets\.npy' cannot be opened"),
        (lambda d: _poke(d / "rel.npy", 21, b">"), r"rel\.npy' has a header for .*changed or damaged"),
        (lambda d: _poke(d / "rel.npy", 128 + 8 * (3 * T * D) + 5, b"\x7f"), r"changed since completed chunk 0"),
        (lambda d: _poke(d / "rel.initial_state.npy", 128 + 8 * 20, b"\x01"), r"changed since completed chunk 2"),
    ],
)
def test_resume_refuses_a_damaged_output(ex, root, tmp_path, monkeypatch, damage, message):
    partial_run(ex, root, tmp_path, monkeypatch)
    damage(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(InputError, match=message):
        ex.explain_dataset(str(root / "x.npy"), out=tmp_path / "rel.npy", batch_size=BATCH, progress=False)
    assert snapshot(tmp_path) == before
    line = one_line_error(run(["explain", root / "net.npz", root / "x.npy", "-o", tmp_path / "rel.npy", "--resume",
                               "--batch-size", BATCH]), "explain", message)  # fmt: skip
    assert "--overwrite" in line
    assert "resume=False" not in line
    assert snapshot(tmp_path) == before
    ex.explain_dataset(str(root / "x.npy"), out=tmp_path / "rel.npy", batch_size=BATCH, progress=False, resume=False)
    assert_reference(tmp_path, root / "ref")


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def _poke(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)


@pytest.fixture(scope="module")
def complete(root) -> Path:
    """A complete run over bucketed data (chunks of scattered rows)."""
    return root / "refz"


@given(name=st.sampled_from(NAMES), fraction=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_any_bit_flip_of_a_complete_run_is_caught(ex, root, complete, name, fraction, bit):
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        for file in NAMES:
            shutil.copy(complete / file, directory / file)
        path = directory / name
        data = bytearray(path.read_bytes())
        offset = int(fraction * len(data))
        data[offset] ^= 1 << bit
        path.write_bytes(bytes(data))
        before = snapshot(directory)
        with pytest.raises(InputError, match="cannot resume"):
            ex.explain_dataset(str(root / "xz.npz"), out=directory / "rel.npy", batch_size=BATCH, progress=False)
        assert snapshot(directory) == before


@given(name=st.sampled_from(NAMES), fraction=st.floats(0, 1, exclude_max=True))
def test_any_truncation_of_a_complete_run_is_caught(ex, root, complete, name, fraction):
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        for file in NAMES:
            shutil.copy(complete / file, directory / file)
        path = directory / name
        os.truncate(path, int(fraction * path.stat().st_size))
        before = snapshot(directory)
        with pytest.raises(InputError, match="cannot resume"):
            ex.explain_dataset(str(root / "xz.npz"), out=directory / "rel.npy", batch_size=BATCH, progress=False)
        assert snapshot(directory) == before


@pytest.fixture(scope="module")
def halfway(root, ex) -> Path:
    """A run over bucketed data stopped after 3 of 5 chunks."""
    directory = root / "halfway"
    directory.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        partial_run(ex, root, directory, patch, data="xz.npz")
    return directory


@given(name=st.sampled_from(NAMES), fraction=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_a_bit_flip_of_a_stopped_run_is_caught_or_recomputed(ex, root, halfway, name, fraction, bit):
    """Flipped bits in completed rows, headers or the sidecar refuse; in rows not yet done they are overwritten."""
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        for file in NAMES:
            shutil.copy(halfway / file, directory / file)
        path = directory / name
        data = bytearray(path.read_bytes())
        data[int(fraction * len(data))] ^= 1 << bit
        path.write_bytes(bytes(data))
        before = snapshot(directory)
        try:
            ex.explain_dataset(str(root / "xz.npz"), out=directory / "rel.npy", batch_size=BATCH, progress=False)
        except InputError:
            assert snapshot(directory) == before
        else:
            assert_reference(directory, root / "refz")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: {**s, "completed": None}, r"edited or damaged \(completed: None is not of type 'integer'\)"),
        (lambda s: {k: v for k, v in s.items() if k != "plan"}, r"edited or damaged \(the record: 'plan' is a requir"),
        (lambda s: [s], "not a tf_lrp explain_dataset record"),
        (lambda s: {**s, "completed": 32}, r"edited or damaged \(its checksum does not match"),
        (lambda s: {**s, "plan": {**s["plan"], "batch_size": 16}}, r"edited or damaged \(its checksum"),
    ],
)
def test_a_hand_edited_sidecar_is_refused_as_edited(ex, root, tmp_path, monkeypatch, edit, message):
    partial_run(ex, root, tmp_path, monkeypatch)
    sidecar = json.loads((tmp_path / "rel.json").read_text())
    (tmp_path / "rel.json").write_text(json.dumps(edit(sidecar)))
    before = snapshot(tmp_path)
    with pytest.raises(InputError, match=message):
        ex.explain_dataset(str(root / "x.npy"), out=tmp_path / "rel.npy", batch_size=BATCH, progress=False)
    line = one_line_error(run(["explain", root / "net.npz", root / "x.npy", "-o", tmp_path / "rel.npy", "--resume",
                               "--batch-size", BATCH]), "explain", message)  # fmt: skip
    assert "data changed" not in line
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------------------------
# Crashes at any point, and durability


@given(crash=st.integers(0, 10_000), interval=st.sampled_from([0.0, 3600.0]), killed=st.booleans())
def test_a_crash_at_any_write_resumes_to_the_same_bytes(ex, root, crash, interval, killed):
    """Die at the k-th write, fsync or sidecar replacement of a run; resuming gives the uninterrupted bytes.

    ``interval``: records after every chunk, or only at the end; ``killed``: the dying run cannot
    record what it wrote (as under SIGKILL), else it records it on the way out (an exception).
    """
    with tempfile.TemporaryDirectory() as scratch, pytest.MonkeyPatch.context() as patch:
        out = Path(scratch) / "rel.npy"
        patch.setattr(resumable, "CHECKPOINT_SECONDS", interval)
        if killed:
            patch.setattr(resumable.Checkpoint, "write_quietly", lambda self: self.saved)
        events = []
        for owner, name in ((resumable, "_pwrite_all"), (resumable, "write_sidecar"), (resumable.os, "fsync")):
            original = getattr(owner, name)

            def event(*args, _original=original, **kwargs):
                events.append(1)
                if len(events) == crash % 250 + 1:
                    raise KeyboardInterrupt
                return _original(*args, **kwargs)

            patch.setattr(owner, name, event)
        with contextlib.suppress(KeyboardInterrupt):  # the crash, unless k is past the last event
            ex.explain_dataset(str(root / "xz.npz"), out=out, batch_size=BATCH, progress=False)
        patch.undo()
        ex.explain_dataset(str(root / "xz.npz"), out=out, batch_size=BATCH, progress=False)
        assert_reference(Path(scratch), root / "refz")


def test_files_are_synced_before_the_sidecar_records_a_chunk(ex, root, tmp_path, monkeypatch):
    log: list[str] = []
    fsync, write_sidecar = os.fsync, resumable.write_sidecar

    def logged_fsync(fd):
        log.append(f"fsync {os.path.basename(os.readlink(f'/proc/self/fd/{fd}'))}")
        return fsync(fd)

    def logged_write(path, payload):
        write_sidecar(path, payload)
        log.append(f"sidecar {payload['completed']}")

    monkeypatch.setattr(os, "fsync", logged_fsync)
    monkeypatch.setattr(resumable, "write_sidecar", logged_write)
    monkeypatch.setattr(resumable, "CHECKPOINT_SECONDS", 0.0)  # a record after every chunk
    ex.explain_dataset(str(root / "x.npy"), out=tmp_path / "rel.npy", batch_size=BATCH, progress=False)
    records = [i for i, entry in enumerate(log) if entry.startswith("sidecar") and entry != "sidecar 0"]
    assert [log[i] for i in records] == [f"sidecar {BATCH * (k + 1)}" for k in range(N // BATCH)]
    previous = log.index("sidecar 0")
    assert f"fsync {tmp_path.name}" in log[previous:records[0]]  # the directory, after creating the files
    for record in records:
        synced = log[previous:record]
        for name in NAMES[:4]:
            assert f"fsync {name}" in synced, (name, log[record])
        assert log[record - 1] == f"fsync {tmp_path.name}"  # the directory, after the sidecar's rename
        previous = record


def test_fast_chunks_are_recorded_once_per_checkpoint_interval(ex, root, tmp_path, monkeypatch):
    written = []
    write_sidecar = resumable.write_sidecar
    monkeypatch.setattr(resumable, "write_sidecar", lambda path, payload: (written.append(payload["completed"]),
                                                                           write_sidecar(path, payload)))  # fmt: skip
    monkeypatch.setattr(resumable, "CHECKPOINT_SECONDS", 3600.0)
    ex.explain_dataset(str(root / "x.npy"), out=tmp_path / "rel.npy", batch_size=BATCH, progress=False)
    assert written == [0, N]  # the new record, then the end: no sync or rewrite per chunk
    assert_reference(tmp_path, root / "ref")
    assert json.loads((tmp_path / "rel.json").read_text())["completed"] == N


def test_resume_of_an_output_that_does_not_exist_starts_the_run(root, tmp_path):
    out = tmp_path / "rel.npy"
    code, stdout, stderr = run(["explain", root / "net.npz", root / "x.npy", "-o", out, "--resume", "--batch-size",
                                BATCH, "--no-progress"])  # fmt: skip
    assert (code, stderr) == (0, ""), stderr
    assert "starting a new one" in stdout
    assert f"explained {N} samples" in stdout
    assert_reference(tmp_path, root / "ref")
    one_line_error(run(["explain", root / "net.npz", root / "x.npy", "-o", out]), "explain", "exists: pass --resume")


# --------------------------------------------------------------------------------------------
# 5: a full disk


def test_no_space_from_fallocate_is_one_line_and_touches_nothing(ex, root, tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(resumable, "_free_bytes", lambda directory: None)  # the up-front check cannot tell
    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(InputError, match=r"no space left on /.* for .*rel\.npy': [\d,]+ bytes needed"):
        ex.explain_dataset(str(root / "x.npy"), out=tmp_path / "rel.npy", batch_size=BATCH, progress=False)
    one_line_error(run(["explain", root / "net.npz", root / "x.npy", "-o", tmp_path / "r2.npy"]), "explain",
                   "no space left on")  # fmt: skip


def test_no_space_mid_run_keeps_what_is_complete(ex, root, tmp_path, monkeypatch):
    writes = []
    pwrite_all = resumable._pwrite_all

    def filling(fd, data, offset):
        writes.append(1)
        if len(writes) > 4 + 4 * 2:  # the headers, then two chunks of four files (x.npy: one run of rows each)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return pwrite_all(fd, data, offset)

    monkeypatch.setattr(resumable, "_pwrite_all", filling)
    with pytest.raises(InputError, match=r"no space left on .* while writing .*: 16 of 40 samples are complete"):
        ex.explain_dataset(str(root / "x.npy"), out=tmp_path / "rel.npy", batch_size=BATCH, progress=False)
    monkeypatch.undo()
    resumed = ex.explain_dataset(str(root / "x.npy"), out=tmp_path / "rel.npy", batch_size=BATCH, progress=False)
    assert resumed.resumed_from == 16
    assert_reference(tmp_path, root / "ref")


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 256 KiB tmpfs (root only)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "tiny"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_full_tmpfs_is_one_line_not_sigbus(ex, tmp_path, tiny_filesystem, monkeypatch):
    x = np.random.default_rng(0).normal(size=(1500, 8, D))  # relevance alone: 288 KB
    np.save(tmp_path / "big.npy", x)
    net = tmp_path / "net.npz"
    ex.save(net)
    out = tiny_filesystem / "rel.npy"
    line = one_line_error(run(["explain", net, tmp_path / "big.npy", "-o", out]), "explain",
                          rf"no space left on {tiny_filesystem} for '{out}': [\d,]+ bytes needed, [\d,]+ available")
    assert list(tiny_filesystem.iterdir()) == [], line  # refused before anything was written
    monkeypatch.setattr(resumable, "_free_bytes", lambda directory: None)  # now the tmpfs itself refuses
    one_line_error(run(["explain", net, tmp_path / "big.npy", "-o", tiny_filesystem / "r2.npy"]), "explain",
                   rf"no space left on {tiny_filesystem} for")  # fmt: skip


# --------------------------------------------------------------------------------------------
# 6: damaged and hostile input files


def _zip_member_offset(path: Path, index: int = 0) -> int:
    with zipfile.ZipFile(path) as archive:
        info = archive.infolist()[index]
    with open(path, "rb") as handle:
        handle.seek(info.header_offset + 26)
        name, extra = np.frombuffer(handle.read(4), "<u2")
    return info.header_offset + 30 + int(name) + int(extra)


@pytest.fixture(scope="module")
def damaged(root, tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("damaged")
    net = (root / "net.npz").read_bytes()
    x = (root / "x.npy").read_bytes()
    files = {
        "trunc.npz": net[: len(net) // 2],
        "empty.npy": b"",
        "trunc.npy": x[:1000],
        "header.npy": x[:10] + b"{'descr': '<f8', 'shape': ((((((" + x[40:],
        "magic.npy": b"\x93NUMPY\x07\x00" + x[8:],
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    crc = bytearray(net)
    crc[_zip_member_offset(root / "net.npz", 1) + 200] ^= 0xFF  # inside a member's data: its CRC fails
    (directory / "crc.npz").write_bytes(bytes(crc))
    # a member whose header declares 1 TiB (the archive holds 200 bytes)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (1 << 37,)})
    with zipfile.ZipFile(directory / "bomb.npz", "w") as archive:
        archive.writestr("x.npy", header.getvalue() + b"\0" * 72)
    np.savez_compressed(directory / "zeros.npz", x=np.zeros((1 << 18, 4, 4)))  # 32 MiB of zeros in 40 KB
    return {name: directory / name for name in [*files, "crc.npz", "bomb.npz", "zeros.npz"]}


@pytest.mark.parametrize(
    ("argv", "pattern"),
    [
        (["explain", "trunc.npz", "x", "-o", "{tmp}/r.npy"], r"trunc\.npz' is not a readable \.npz file"),
        (["explain", "crc.npz", "x", "-o", "{tmp}/r.npy"], r"crc\.npz' is not a readable \.npz file .*CRC"),
        (["explain", "net", "empty.npy", "-o", "{tmp}/r.npy"], r"empty\.npy' is not a valid \.npy file"),
        (["explain", "net", "trunc.npy", "-o", "{tmp}/r.npy"], r"trunc\.npy' is truncated: its header declares"),
        (["explain", "net", "header.npy", "-o", "{tmp}/r.npy"], r"header\.npy' is not a valid \.npy file"),
        (["explain", "net", "magic.npy", "-o", "{tmp}/r.npy"], r"magic\.npy' is .*version \(7, 0\)"),
        (["explain", "net", "trunc.npz", "-o", "{tmp}/r.npy"], r"trunc\.npz' is not a readable \.npz file"),
        (["explain", "net", "bomb.npz", "-o", "{tmp}/r.npy"], r"member 'x\.npy' declares \(137438953472,\) float64"),
        (["explain", "net", "x", "-o", "{tmp}/r.npy", "--memory-budget", "inf"], "--memory-budget must be a finite"),
        (["explain", "net", "x", "-o", "{tmp}/r.npy", "--memory-budget", "nan"], "--memory-budget must be a finite"),
        (["explain", "net", "x", "-o", "{tmp}/r.npy", "--memory-budget", "1e400"], "--memory-budget must be a finite"),
        (["validate", "trunc.npz"], r"trunc\.npz' is not a readable \.npz file"),
        (["validate", "crc.npz"], r"crc\.npz' is not a readable \.npz file"),
        (["validate", "bomb.npz"], r"bomb\.npz' member 'x\.npy' declares"),
        (["info", "trunc.npz"], r"trunc\.npz' is not a readable \.npz file"),
        (["info", "crc.npz"], "CRC"),
        (["convert", "trunc.npz", "-o", "{tmp}/n.npz"], r"trunc\.npz' is not a readable \.npz file"),
        (["convert", "crc.npz", "-o", "{tmp}/n.npz"], r"crc\.npz' is not a readable \.npz file"),
        (["evaluate", "net", "x", "empty.npy", "-o", "{tmp}/e.json"], r"empty\.npy' is not a readable \.npy file"),
        (["evaluate", "net", "x", "trunc.npy", "-o", "{tmp}/e.json"], r"trunc\.npy' is not a readable \.npy file"),
    ],
)
def test_damaged_files_are_one_line_errors(root, damaged, tmp_path, argv, pattern):
    names = {"net": root / "net.npz", "x": root / "x.npy", **damaged}
    resolved = [str(names.get(a, a)).replace("{tmp}", str(tmp_path)) for a in argv]
    before = snapshot(damaged["trunc.npz"].parent)
    one_line_error(run(resolved), argv[0], pattern)
    assert snapshot(damaged["trunc.npz"].parent) == before
    assert list(tmp_path.iterdir()) == []


def test_declared_sizes_are_checked_before_reading(damaged, monkeypatch):
    monkeypatch.setattr(_io, "read_limit", lambda: 1 << 20)
    with pytest.raises(InputError, match=r"declares 32\.0 MiB of arrays \(largest 'x': \(262144, 4, 4\) float64\), "
                                         r"more than the 1\.0 MiB"):  # fmt: skip
        _io.load_npz(damaged["zeros.npz"])
    one_line_error(run(["validate", damaged["zeros.npz"]]), "validate", "more than the 1.0 MiB")


@given(start=st.integers(0, 127), junk=st.binary(min_size=1, max_size=16))
def test_fuzzed_npy_headers_are_input_errors(root, start, junk):
    data = bytearray((root / "x.npy").read_bytes())
    data[start : start + len(junk)] = junk
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "fuzz.npy"
        path.write_bytes(bytes(data))
        for mmap in (True, False):
            try:
                array = _io.load_npy(path, mmap=mmap)
            except InputError:
                continue
            assert array.nbytes <= len(data)


@given(fraction=st.floats(0, 1, exclude_max=True), junk=st.binary(min_size=1, max_size=8))
def test_fuzzed_npz_files_are_input_errors(root, fraction, junk):
    data = bytearray((root / "xz.npz").read_bytes())
    start = int(fraction * len(data))
    data[start : start + len(junk)] = junk
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "fuzz.npz"
        path.write_bytes(bytes(data))
        with contextlib.suppress(InputError):  # anything else fails the test
            _io.load_npz(path)


# --------------------------------------------------------------------------------------------
# 7: numeric blow-up warns


@pytest.fixture(scope="module")
def saturated() -> Explainer:
    return Explainer.from_weights(weights(scale=100.0), cell="lstm", dtype="float64")


def test_blown_up_relevance_warns_once_naming_the_worst_sample(saturated, root):
    x = np.load(root / "x.npy")
    with pytest.warns(TfLrpWarning) as caught:
        result = saturated.explain(x, bias_factor=1.0)
    assert len(caught) == 1
    assert caught[0].filename == __file__  # points at the caller
    mass = np.abs(result.relevance).sum(axis=(1, 2)) + np.abs(result.initial_state_relevance)
    ratio = mass / np.maximum(np.abs(result.explained_score), 1)
    worst = int(np.argmax(ratio))
    assert ratio[worst] > conservation.BLOWUP_THRESHOLD
    assert f"lrp: sample {worst} has relevance of {ratio[worst]:.3g} times" in str(caught[0].message)

    with pytest.warns(TfLrpWarning) as caught:  # explain_dataset: once, at the index in the whole data set
        saturated.explain_dataset(x, batch_size=BATCH, bias_factor=1.0, progress=False)
    assert len(caught) == 1
    assert f"sample {worst} has" in str(caught[0].message)
    assert caught[0].filename == __file__


def test_ordinary_explanations_do_not_warn(ex, root):
    x = np.load(root / "x.npy")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TfLrpWarning)
        for method in ("lrp", "gradient_x_input", "random"):  # random: noise the size of the inputs, never checked
            ex.explain(x, method=method)
    assert conservation.worst_sample("lrp", np.zeros((2, 3, 1)), np.zeros(2), np.zeros(2)) is None
    assert conservation.worst_sample("random", np.full((2, 3, 1), np.inf), np.zeros(2), np.zeros(2)) == (0, np.inf)
    big = np.full((1, 3, 1), 500.0)
    assert conservation.worst_sample("lrp", big, np.ones(1), np.zeros(1)) == (0, 1500.0)
    assert conservation.worst_sample("sensitivity", big, np.ones(1), np.zeros(1)) is None


def test_the_cli_prints_the_warning_as_one_line(saturated, root, tmp_path):
    saturated.save(tmp_path / "hot.npz")
    code, _, stderr = run(["explain", tmp_path / "hot.npz", root / "x.npy", "-o", tmp_path / "r.npy", "--bias-factor",
                           "1", "--no-progress"])  # fmt: skip
    assert code == 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1
    assert re.match(r"tf-lrp explain: warning: lrp: sample \d+ has relevance of", lines[0])


# --------------------------------------------------------------------------------------------
# 9: messages that say what happened, in the caller's words


def test_a_nan_is_reported_at_its_index_in_the_data_set(ex, root, tmp_path):
    x = np.load(root / "x.npy")
    x[27, 4, 2] = np.nan  # chunk 3 (samples 24-31), row 3 of that chunk
    with pytest.raises(InputError, match=r"NaN or infinite values \(first at index \(27, 4, 2\)\)"):
        ex.explain_dataset(x, batch_size=BATCH, progress=False)
    with pytest.raises(InputError, match=r"first at index \(27, 4, 2\)"):
        ex.explain_dataset(x, batch_size=BATCH, progress=False, out=tmp_path / "rel.npy")
    assert json.loads((tmp_path / "rel.json").read_text())["completed"] == 24  # what came before is kept


def test_masking_nan_is_refused_at_conversion():
    keras = pytest.importorskip("keras")
    layers = keras.layers
    masking = layers.Masking(mask_value=float("nan"))
    model = keras.Sequential([keras.Input((T, D)), masking, layers.LSTM(H), layers.Dense(C)])
    with pytest.raises(ConversionError, match=r"mask_value=nan, which masks nothing"):
        Explainer.from_keras(model)


def test_validate_info_and_explain_agree_on_a_float16_network(ex, root, tmp_path):
    with np.load(root / "net.npz") as data:
        arrays = {k: data[k] if k == MANIFEST_KEY else data[k].astype(np.float16) for k in data.files}
    np.savez(tmp_path / "half.npz", **arrays)
    code, stdout, _ = run(["validate", tmp_path / "half.npz"])
    assert code == 1
    assert re.search(r"problem: weights: .*half\.npz' stores float16 weights .*--dtype float32", stdout)
    one_line_error(run(["info", tmp_path / "half.npz"]), "info", "stores float16 weights")
    one_line_error(run(["explain", tmp_path / "half.npz", root / "x.npy", "-o", tmp_path / "r.npy"]), "explain",
                   "stores float16 weights")  # fmt: skip
    code, _, stderr = run(["explain", tmp_path / "half.npz", root / "x.npy", "-o", tmp_path / "r.npy", "--dtype",
                           "float32", "--no-progress"])  # fmt: skip
    assert (code, stderr) == (0, "")


def test_from_weights_refuses_weights_that_overflow_the_dtype():
    huge = weights()
    huge[1] = huge[1].copy()
    huge[1][0, 0] = 1e39
    with pytest.raises(InputError, match=r"layer 0 array 'recurrent_kernel': 1 of 64 weights exceed the range of "
                                         r"float32 .*use dtype='float64'"):  # fmt: skip
        Explainer.from_weights(huge, cell="lstm", dtype="float32")
    Explainer.from_weights(huge, cell="lstm", dtype="float64")


def test_cli_errors_name_flags_not_python_arguments(root, tmp_path):
    rng = np.random.default_rng(4)
    state = {
        "gru.weight_ih_l0": rng.normal(size=(3 * H, D)),
        "gru.weight_hh_l0": rng.normal(size=(3 * H, H)),
        "gru.bias_ih_l0": rng.normal(size=(3 * H,)),
        "gru.bias_hh_l0": rng.normal(size=(3 * H,)),
        "fc.weight": rng.normal(size=(C, H)),
        "fc.bias": rng.normal(size=(C,)),
    }
    np.savez(tmp_path / "gru.npz", **state)
    line = one_line_error(run(["convert", tmp_path / "gru.npz", "-o", tmp_path / "n.npz", "--cell", "lstm"]),
                          "convert", r"which is a GRU; pass --cell gru")  # fmt: skip
    assert "cell=" not in line
    assert "an GRU" not in line
    out = tmp_path / "rel.npy"
    assert run(["explain", root / "net.npz", root / "x.npy", "-o", out, "--no-progress"])[0] == 0
    line = one_line_error(run(["explain", root / "net.npz", root / "x.npy", "-o", out, "--resume", "--eps", "0.5"]),
                          "explain", r"eps: recorded 0\.001, now 0\.5.*pass --overwrite to start over")  # fmt: skip
    assert "resume=False" not in line

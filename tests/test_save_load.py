"""Explainer.save / Explainer.load: one .npz with the arrays and the manifest, read without pickle."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tf_lrp.errors import InputError, LayoutError
from tf_lrp.explainer import MANIFEST_KEY, Explainer
from tf_lrp.layout import validate_manifest

MANIFESTS = {
    "masking_bi_gru": {
        "format": "tf_lrp.layout",
        "version": 1,
        "name": "masked",
        "mask_value": -1.0,
        "layers": [
            {"kind": "gru", "units": 3, "input_size": 2, "direction": "bidirectional", "reset_after": False},
            {"kind": "dense", "units": 4, "input_size": 6, "activation": "relu"},
            {"kind": "dense", "units": 2, "input_size": 4, "activation": "softmax", "use_bias": False},
        ],
    },
    "token_lstm": {
        "format": "tf_lrp.layout",
        "version": 1,
        "layers": [
            {"kind": "embedding", "input_dim": 11, "output_dim": 3, "mask_zero": True},
            {"kind": "lstm", "units": 4, "input_size": 3, "use_bias": False},
            {"kind": "dense", "units": 2, "input_size": 4},
        ],
    },
}


def _explainer(name: str, dtype: str = "float64") -> Explainer:
    layout = validate_manifest(MANIFESTS[name])
    rng = np.random.default_rng(4)
    weights = [rng.normal(0.0, 0.5, spec.shape) for spec in layout.arrays]
    return Explainer(layout, weights, dtype=dtype)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Explainer, Path]:
    explainer = _explainer("masking_bi_gru")
    path = tmp_path_factory.mktemp("saved") / "net.npz"
    explainer.save(path)
    return explainer, path


@pytest.mark.parametrize("name", sorted(MANIFESTS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_keeps_manifest_weights_and_dtype(tmp_path: Path, name: str, dtype: str) -> None:
    explainer = _explainer(name, dtype)
    path = tmp_path / "net.npz"
    explainer.save(path)
    loaded = Explainer.load(path)
    assert loaded.dtype == dtype
    assert loaded.manifest == explainer.manifest
    assert loaded.layout == explainer.layout
    assert loaded.fingerprint == explainer.fingerprint
    for ours, theirs in zip(loaded.weights, explainer.weights, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert not list(tmp_path.glob(".*tmp")), "the atomic write left a temporary file"


def test_loaded_explainer_explains_the_same(saved: tuple[Explainer, Path]) -> None:
    explainer, path = saved
    loaded = Explainer.load(path)
    assert loaded.layout.mask_value == -1.0
    x = np.random.default_rng(0).standard_normal((3, 5, 2))
    x[1, 3:] = -1.0  # Masking padding, as the manifest says
    np.testing.assert_array_equal(loaded.score(x), explainer.score(x))


def test_the_file_is_plain_arrays_and_a_json_manifest(saved: tuple[Explainer, Path]) -> None:
    explainer, path = saved
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        manifest = json.loads(str(data[MANIFEST_KEY]))
    assert keys == {spec.key for spec in explainer.layout.arrays} | {MANIFEST_KEY}
    assert manifest == explainer.manifest
    validate_manifest(manifest)  # the stored manifest is valid against weights_schema.json


def _rewrite(source: Path, target: Path, change: Any) -> Path:
    with np.load(source, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    change(arrays)
    np.savez(target, **arrays)
    return target


def test_load_refuses_tampered_files(saved: tuple[Explainer, Path], tmp_path: Path) -> None:
    _, path = saved
    with pytest.raises(InputError, match="does not exist"):
        Explainer.load(tmp_path / "missing.npz")

    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(InputError, match=r"cannot be read|not a readable"):
        Explainer.load(text)

    single = tmp_path / "single.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(InputError, match="single array"):
        Explainer.load(single)

    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(InputError, match="not a tf_lrp network file"):
        Explainer.load(other)

    pickled = _rewrite(path, tmp_path / "pickled.npz", lambda a: a.update({"0/forward/kernel": np.array([{}], object)}))
    with pytest.raises(InputError, match="without unpickling"):
        Explainer.load(pickled)

    bad_json = _rewrite(path, tmp_path / "json.npz", lambda a: a.update({MANIFEST_KEY: np.asarray("{not json")}))
    with pytest.raises(LayoutError, match="not valid JSON"):
        Explainer.load(bad_json)

    def wrong_schema(arrays: dict[str, np.ndarray]) -> None:
        manifest = json.loads(str(arrays[MANIFEST_KEY]))
        manifest["layers"][0]["kind"] = "transformer"
        arrays[MANIFEST_KEY] = np.asarray(json.dumps(manifest))

    with pytest.raises(LayoutError, match=r"does not match weights_schema\.json"):
        Explainer.load(_rewrite(path, tmp_path / "schema.npz", wrong_schema))

    reshaped = _rewrite(path, tmp_path / "shape.npz", lambda a: a.update({"1/kernel": a["1/kernel"].T}))
    with pytest.raises(LayoutError, match=r"layer 1 \(dense\) array 'kernel': expected shape \(6, 4\)"):
        Explainer.load(reshaped)

    missing = _rewrite(path, tmp_path / "missing_array.npz", lambda a: a.pop("2/kernel"))
    with pytest.raises(LayoutError, match=r"missing \['2/kernel'\]"):
        Explainer.load(missing)

    poisoned = _rewrite(path, tmp_path / "nan.npz", lambda a: a["1/bias"].__setitem__(0, np.nan))
    with pytest.raises(LayoutError, match="NaN or infinite"):
        Explainer.load(poisoned)


def test_load_refuses_a_zip_that_is_not_npz(tmp_path: Path) -> None:
    path = tmp_path / "archive.npz"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.pkl", b"\x80\x04K\x01.")
    path.write_bytes(buffer.getvalue())
    with pytest.raises(InputError, match=r"not a tf_lrp network file|cannot be read"):
        Explainer.load(path)


def test_graph_networks_round_trip(tmp_path) -> None:
    from .networks import NETWORKS

    for name in ("two_inputs", "per_step_tagger"):
        case = NETWORKS[name](np.random.default_rng(3))
        path = tmp_path / f"{name}.npz"
        case.explainer.save(path)
        loaded = Explainer.load(path)
        assert loaded.layout == case.explainer.layout
        assert loaded.fingerprint == case.explainer.fingerprint
        x = list(case.x) if isinstance(case.x, tuple) else case.x
        np.testing.assert_array_equal(loaded.score(x), case.explainer.score(x))

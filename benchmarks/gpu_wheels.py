"""The wheel folder of benchmarks/gpu.sh: prepare it on a connected machine, install it offline.

Standard library only, Python >= 3.10: ``install`` and ``plan`` run under the GPU machine's
system Python before anything is installed. A sketch of the two steps (``benchmarks/gpu.sh``
drives them; see docs/performance.md)::

    # here, with network: wheels for CPython 3.12 on manylinux x86_64, and tf_lrp's own wheel
    python benchmarks/gpu_wheels.py prepare benchmarks/wheels --python-version 3.12

    # there, offline: what would be installed (the system's own packages are kept)
    python3 benchmarks/gpu_wheels.py plan benchmarks/wheels
    python3 benchmarks/gpu_wheels.py install benchmarks/wheels /tmp/tf_lrp-gpu-site

``prepare`` downloads keras, jsonschema and tqdm with all their needs as binary wheels
(``pip download --only-binary=:all: --python-version ... --platform manylinux...``), pinned to
the versions of the interpreter that runs it when it has them (the combination the test
suite passed with), builds a wheel of tf_lrp from the source tree with its TensorFlow
requirement removed and its commit in the version (``0.1.0+g1a2b3c4``), and writes
``MANIFEST.json`` (Python version, platforms, every wheel with its sha256).

``install`` checks the Python version and every wheel's sha256 against the manifest, leaves
out the wheels whose distribution the system Python already has (numpy, ml_dtypes, ... come
with its JAX and must not be shadowed), and installs the rest with
``pip install --no-index --no-deps --target DIR`` (or, where that Python has no pip, by
unpacking the wheels, which is what pip does for these). A ``.installed`` stamp in ``DIR``
holding the manifest's digest makes a second call a no-op.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: what tf_lrp needs besides numpy (which the GPU machine's JAX brings)
REQUIREMENTS = ("keras", "jsonschema", "tqdm")
#: manylinux tags accepted for the GPU machine (glibc >= 2.28: every current CUDA 13 distribution)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64")  # fmt: skip
MANIFEST = "MANIFEST.json"


def normalise(name: str) -> str:
    """A distribution name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_name(path: Path) -> tuple[str, str]:
    """``(normalised name, version)`` of a wheel file name."""
    name, version = path.name.split("-")[:2]
    return normalise(name), version


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# prepare (connected machine)


def _pins() -> list[str]:
    """The requirements, pinned to this interpreter's versions where it has them."""
    pins = []
    for name in REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def _commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "tf_lrp", "pyproject.toml"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + (".dirty" if dirty else "")


def build_tf_lrp(out: Path) -> Path:
    """Build tf_lrp's wheel from the source tree, without the TensorFlow requirement."""
    for old in out.glob("tf_lrp-*.whl"):
        old.unlink()
    commit = _commit()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        for item in ("pyproject.toml", "README.md", "weights_schema.json", "tf_lrp"):
            if (ROOT / item).is_dir():
                shutil.copytree(ROOT / item, source / item, ignore=shutil.ignore_patterns("__pycache__"))
            elif (ROOT / item).exists():
                shutil.copy2(ROOT / item, source / item)
        pyproject = source / "pyproject.toml"
        text, count = re.subn(r'^\s*"tensorflow[^"]*",\n', "", pyproject.read_text(), flags=re.MULTILINE)
        if count != 1:
            raise SystemExit("prepare: pyproject.toml has no single tensorflow requirement line to remove")
        pyproject.write_text(text)
        version_file = source / "tf_lrp" / "_version.py"
        version = re.search(r'__version__ = "([^"]+)"', version_file.read_text()).group(1)
        local = f"{version}+g{commit}".replace("unknown", "local")
        version_file.write_text(version_file.read_text().replace(f'"{version}"', f'"{local}"'))
        command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                   str(source)]  # fmt: skip
        if subprocess.run(command).returncode != 0:  # no setuptools here: let pip fetch the build backend
            subprocess.run([c for c in command if c != "--no-build-isolation"], check=True)
    (wheel,) = out.glob("tf_lrp-*.whl")
    with zipfile.ZipFile(wheel) as archive:  # a package left out of pyproject's list would fail only there
        names = set(archive.namelist())
    missing = [str(init.parent.relative_to(ROOT)) for init in sorted((ROOT / "tf_lrp").rglob("__init__.py"))
               if str(init.relative_to(ROOT)) not in names]  # fmt: skip
    if missing:
        wheel.unlink()
        raise SystemExit(f"prepare: the wheel lacks the packages {missing}: add them to [tool.setuptools] packages")
    return wheel


def prepare(out: Path, python_version: str, refresh: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    previous = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    pins = _pins()
    have_deps = previous.get("python_version") == python_version and previous.get("requirements") == pins
    if refresh or not have_deps:
        for old in out.glob("*.whl"):
            old.unlink()
        command = [
            sys.executable, "-m", "pip", "download", "-q", "-d", str(out), "--only-binary=:all:",
            "--python-version", python_version, "--implementation", "cp",
            *(f"--platform={p}" for p in PLATFORMS), *pins,
        ]  # fmt: skip
        print("prepare:", " ".join(command), flush=True)
        subprocess.run(command, check=True)
    else:
        print(f"prepare: the dependency wheels for Python {python_version} are there ({', '.join(pins)})")
    wheel = build_tf_lrp(out)
    print(f"prepare: built {wheel.name} (no TensorFlow requirement)")
    wheels = sorted(out.glob("*.whl"))
    manifest = {
        "python_version": python_version,
        "platforms": list(PLATFORMS),
        "requirements": pins,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "wheels": [{"file": w.name, "name": wheel_name(w)[0], "version": wheel_name(w)[1], "sha256": sha256(w)}
                   for w in wheels],
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print(f"prepare: {len(wheels)} wheels, {size:.1f} MiB in {out} (manifest: {manifest_path.name})")


# --------------------------------------------------------------------------------------------
# plan and install (the GPU machine, offline)


def load_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise SystemExit(
            f"no {MANIFEST} in {folder}: prepare the wheel folder first on a connected machine "
            "(benchmarks/gpu.sh --prepare) and bring it along"
        )
    return json.loads(path.read_text())


def installed() -> dict[str, str]:
    """Distributions this Python has (normalised name -> version), without PYTHONPATH additions."""
    paths = [p for p in sys.path if p and p not in os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    return {normalise(d.metadata["Name"]): d.version for d in metadata.distributions(path=paths) if d.metadata["Name"]}


def plan(folder: Path) -> tuple[list[Path], list[str]]:
    """The wheels to install, and one line per wheel left out because the system has it."""
    manifest = load_manifest(folder)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if manifest["python_version"] != here:
        raise SystemExit(
            f"the wheels in {folder} are for Python {manifest['python_version']}, this is Python {here} "
            f"({sys.executable}): prepare them with --python-version {here}"
        )
    system = installed()
    install, kept = [], []
    for entry in manifest["wheels"]:
        if entry["name"] in system and entry["name"] != "tf-lrp":
            kept.append(f"{entry['name']} {system[entry['name']]} (system; wheel {entry['version']} not installed)")
        else:
            install.append(folder / entry["file"])
    return install, kept


def install(folder: Path, target: Path) -> None:
    manifest = load_manifest(folder)
    stamp = target / ".installed"
    digest = hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text().strip() == digest:
        print(f"install: {target} already holds this wheel folder")
        return
    wheels, kept = plan(folder)
    by_file = {e["file"]: e["sha256"] for e in manifest["wheels"]}
    for wheel in wheels:
        if not wheel.is_file() or sha256(wheel) != by_file[wheel.name]:
            raise SystemExit(f"install: {wheel} is missing or differs from {MANIFEST} (sha256): copy the folder again")
    for line in kept:
        print("install: keeping", line)
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    start = time.perf_counter()
    has_pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0
    if has_pip:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--disable-pip-version-check", "--target", str(target), *map(str, wheels)],
                       check=True)  # fmt: skip
    else:  # a wheel is a zip of its site-packages files (these wheels carry no scripts to generate)
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(target)
    how = "pip --no-index --no-deps --target" if has_pip else "unpacking (this Python has no pip)"
    print(f"install: {len(wheels)} wheels into {target} by {how} in {time.perf_counter() - start:.1f} s")
    stamp.write_text(digest + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prepare", help="download the wheels and build tf_lrp's (needs network)")
    p.add_argument("folder", type=Path)
    p.add_argument("--python-version", default="3.12", help="of the GPU machine's Python (default 3.12)")
    p.add_argument("--refresh", action="store_true", help="download the dependency wheels again")
    p = commands.add_parser("plan", help="print what install would install and keep")
    p.add_argument("folder", type=Path)
    p = commands.add_parser("install", help="install offline into a --target folder")
    p.add_argument("folder", type=Path)
    p.add_argument("target", type=Path)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.folder, args.python_version, args.refresh)
    elif args.command == "plan":
        wheels, kept = plan(args.folder)
        for wheel in wheels:
            print("install", wheel.name)
        for line in kept:
            print("keep   ", line)
    else:
        install(args.folder, args.target)
    return 0


if __name__ == "__main__":
    sys.exit(main())

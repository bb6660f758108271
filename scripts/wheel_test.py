"""Build the wheel, install it into a fresh virtual environment, and use it there.

Like Keras's packaging test: the installed wheel (not the checkout) must import, ship its package
data (the JSON schema, the bundled demo model and data) and run, with none of the optional
packages (torch, JAX, matplotlib, Apache Beam) present.

Default (cheap, a few seconds plus one TensorFlow start): the fresh venv gets the wheel with
``pip install --no-deps`` and, as its dependencies, links to exactly the distributions that the
wheel's required dependencies need (their closure, read from this environment's metadata), so the
optional packages are physically absent; ``pip check`` then proves the closure satisfies the wheel.
``--full``: a real ``pip install WHEEL`` that resolves and installs every dependency (from pip's
cache when it has them; about a minute and 2 GB of disk).

    .venv/bin/python scripts/wheel_test.py [--full] [--keep DIR]
"""

from __future__ import annotations

import argparse
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

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = ("torch", "jax", "matplotlib", "apache_beam")
CHECK = f"""
import importlib.util, json, sys
import numpy as np
import tf_lrp
assert "site-packages" in tf_lrp.__file__, tf_lrp.__file__
present = [m for m in {OPTIONAL!r} if importlib.util.find_spec(m) is not None]
assert not present, f"optional packages present: {{present}}"
from tf_lrp import Explainer, Seq2SeqExplainer, cli
model, data, about = cli.demo_files()     # package data shipped in the wheel
with np.load(data) as arrays:
    x, lengths = arrays["x"][:16], arrays["lengths"][:16]
result = Explainer.load(model).explain(x, lengths=lengths, bias_factor=1.0)
assert float(result.conservation_error.max()) < 1e-3
assert "torch" not in sys.modules and "matplotlib" not in sys.modules
print(json.dumps({{"tf_lrp": tf_lrp.__version__, "from": tf_lrp.__file__, "explained": len(x)}}))
"""


def run(command: list[str], **options) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **options)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stdout}\n{done.stderr}")
    return done


def requirement_closure(requirements: list[str]) -> list[metadata.Distribution]:
    """The installed distributions that ``requirements`` (no extras) need, transitively."""
    environment = default_environment()
    seen: dict[str, metadata.Distribution] = {}
    todo = list(requirements)
    while todo:
        requirement = Requirement(todo.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({**environment, "extra": ""}):
            continue
        key = re.sub(r"[-_.]+", "-", requirement.name).lower()
        if key in seen:
            continue
        seen[key] = distribution = metadata.distribution(requirement.name)
        todo.extend(distribution.requires or [])
    return list(seen.values())


def wheel_requirements(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines of the wheel's own METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        text = archive.read(name).decode("utf-8")
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def link_distributions(distributions: list[metadata.Distribution], site: Path) -> int:
    """Symlink the top-level files and folders of each distribution into ``site``; return their number."""
    linked = 0
    for distribution in distributions:
        base = Path(distribution.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in distribution.files or [] if not str(f).startswith("..")}
        for top in sorted(tops):
            source, target = base / top, site / top
            if source.exists() and not target.exists() and top != "__pycache__":
                target.symlink_to(source)
                linked += 1
    return linked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="resolve and install every dependency with pip")
    parser.add_argument("--keep", default=None, help="work in this folder and keep it")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tf_lrp_wheel_") as scratch:
        work = Path(args.keep or scratch)
        work.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools' scratch: stale files would enter the wheel
        run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(work / "dist"), str(ROOT)])
        shutil.rmtree(ROOT / "build", ignore_errors=True)
        (wheel,) = (work / "dist").glob("tf_lrp-*.whl")
        built = time.perf_counter()
        venv = work / "venv"
        run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
        python = venv / "bin" / "python"
        pip = [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check", "-q"]
        if args.full:
            run([*pip, "install", str(wheel)])
        else:
            where = "import sysconfig; print(sysconfig.get_path('purelib'))"
            site = Path(run([str(python), "-c", where]).stdout.strip())
            required = wheel_requirements(wheel)
            closure = requirement_closure([r for r in required if "extra ==" not in r])
            link_distributions(closure, site)
            run([*pip, "install", "--no-deps", "--no-index", str(wheel)])
            run([*pip, "check"])
        installed = time.perf_counter()
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_BACKEND")}
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        outcome = run([str(python), "-c", CHECK], env=env, cwd=work).stdout.strip()
        help_text = run([str(venv / "bin" / "tf-lrp"), "--help"], env=env, cwd=work).stdout
        if "explain" not in help_text:
            raise SystemExit(f"tf-lrp --help from the wheel does not list the commands:\n{help_text}")
        print(f"wheel test passed: {wheel.name} ({wheel.stat().st_size / 1e6:.2f} MB); {outcome}")
        print(
            f"build {built - started:.1f} s, venv + install {installed - built:.1f} s "
            f"({'pip install' if args.full else 'no-deps + linked dependency closure'}), "
            f"use {time.perf_counter() - installed:.1f} s"
        )


if __name__ == "__main__":
    main()

"""The interpreters cells run in: ours, and one virtual environment per peer under ``.bench/``.

Peers are installed from the package index at benchmark time, with exact
pins, and their installed versions are checked on every run: an environment
whose versions drift is reinstalled, and one that cannot be made right stops
the run with an error naming the package.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from qmbench.spec import LANGGRAPH, OURS, QM015

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / ".bench"
OUR_PYTHON = REPO / ".venv" / "bin" / "python"


@dataclass(frozen=True)
class PeerEnv:
    """A peer's environment: what to install and which versions must result."""

    name: str
    requirements: tuple[str, ...]
    #: Distributions to report (besides the pinned ones) for the README.
    also_report: tuple[str, ...] = ()

    @property
    def pinned(self) -> dict[str, str]:
        return dict(req.split("==", 1) for req in self.requirements)

    @property
    def path(self) -> Path:
        return BENCH_DIR / self.name

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


PEERS: dict[str, PeerEnv] = {
    LANGGRAPH: PeerEnv(
        LANGGRAPH,
        (
            "langgraph==1.2.22",
            "langgraph-checkpoint-sqlite==3.1.2",
            "langgraph-checkpoint-postgres==3.2.0",
            "psycopg==3.3.9",
            "psycopg-binary==3.3.9",
        ),
        ("langgraph-checkpoint", "langchain-core", "psycopg-pool", "pydantic"),
    ),
    # 0.1.5's own requirements are ">=", which would pull the 0.9 line of its siblings.
    QM015: PeerEnv(
        QM015,
        (
            "quartermaster-engine==0.1.5",
            "quartermaster-graph==0.1.5",
            "quartermaster-nodes==0.1.5",
            "quartermaster-providers==0.1.5",
        ),
        ("pydantic",),
    ),
}


class EnvError(RuntimeError):
    """A peer environment could not be created or has the wrong versions."""


def base_python() -> Path:
    """The interpreter our own environment is built on, so every engine runs the same Python."""
    candidate = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return candidate if candidate.exists() else Path(sys.executable)


def installed_versions(python: Path, dists: list[str]) -> dict[str, str | None]:
    """``{distribution: version or None}`` as ``python`` sees them."""
    code = (
        "import json, sys, importlib.metadata as m\n"
        "out = {}\n"
        "for d in sys.argv[1:]:\n"
        "    try: out[d] = m.version(d)\n"
        "    except m.PackageNotFoundError: out[d] = None\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run(
        [str(python), "-c", code, *dists], capture_output=True, text=True, check=True
    )
    result: dict[str, str | None] = json.loads(done.stdout)
    return result


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _wrong(peer: PeerEnv, versions: dict[str, str | None]) -> list[str]:
    return [
        f"{dist} {versions.get(dist) or 'missing'} (want {want})"
        for dist, want in peer.pinned.items()
        if versions.get(dist) != want
    ]


def ensure_peer(peer: PeerEnv) -> dict[str, str | None]:
    """Create or repair ``peer``'s environment; return the versions it has."""
    dists = [*peer.pinned, *peer.also_report]
    if not peer.python.exists():
        _log(f"creating {peer.path.relative_to(REPO)} with {base_python()}")
        peer.path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(base_python()), "-m", "venv", str(peer.path)], check=True)
    versions = installed_versions(peer.python, dists)
    if _wrong(peer, versions):
        _log(f"installing {' '.join(peer.requirements)} into {peer.path.relative_to(REPO)}")
        done = subprocess.run(
            [
                str(peer.python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                *peer.requirements,
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-15:])
            raise EnvError(f"pip could not install {peer.name}'s packages:\n{tail}")
        versions = installed_versions(peer.python, dists)
    wrong = _wrong(peer, versions)
    if wrong:
        raise EnvError(f"{peer.path}: wrong versions after install: {'; '.join(wrong)}")
    return versions


def our_versions() -> dict[str, str | None]:
    """Versions of our distributions as our environment sees them."""
    if not OUR_PYTHON.exists():
        raise EnvError(f"{OUR_PYTHON} is missing: set up the development environment first")
    return installed_versions(
        OUR_PYTHON,
        [
            "quartermaster-engine",
            "qm-store-sqlite",
            "qm-store-redis",
            "qm-store-postgres",
            "qm-dispatch-thread",
        ],
    )


def interpreters(engines: set[str]) -> tuple[dict[str, Path], dict[str, dict[str, str | None]]]:
    """The interpreter of each engine in ``engines`` and the versions each one has."""
    pythons: dict[str, Path] = {}
    versions: dict[str, dict[str, str | None]] = {}
    if OURS in engines:
        versions[OURS] = our_versions()
        pythons[OURS] = OUR_PYTHON
    for name, peer in PEERS.items():
        if name in engines:
            versions[name] = ensure_peer(peer)
            pythons[name] = peer.python
    return pythons, versions

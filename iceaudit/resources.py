"""What ships inside the package, found through the import system (importlib).

The repository keeps the shipped demo bank in ``subspace_bank/`` and the FaceLab
classifiers and example policies in ``examples/`` (the product card fixes those
folders); setup.py installs them as the data packages ``iceaudit.subspace_bank``
and ``iceaudit.examples``, so a wheel, an editable install and a checkout all
find them through the same names. Only an uninstalled checkout (``PYTHONPATH=.``)
falls back to the source tree next to the package.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from iceaudit.errors import UserError

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _root(package: str, folder: str) -> Path:
    # Data folders hold no __init__.py (namespace packages), where
    # importlib.resources.files returns a MultiplexedPath: take the spec's location.
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if Path(location).is_dir():
                return Path(location)
    return _SOURCE_ROOT / folder


def shipped_banks_dir() -> Path:
    """The folder of shipped subspace banks (one sub-folder per bank: ``demo``)."""
    return _root("iceaudit.subspace_bank", "subspace_bank")


def examples_dir() -> Path:
    """The shipped examples: ``facelab/`` (classifiers + cards) and ``policies/``."""
    return _root("iceaudit.examples", "examples")


def shipped_bank(name: str) -> Path:
    """The directory of the shipped bank `name` (e.g. ``"demo"``).

    Args:
        name: bank name, a sub-folder of the shipped banks.

    Raises:
        UserError: no such bank ships with this installation.
    """
    folder = shipped_banks_dir() / name
    if not (folder / "manifest.json").is_file():
        shipped = sorted(m.parent.name for m in shipped_banks_dir().glob("*/manifest.json"))
        raise UserError(f"no shipped subspace bank named {name!r} in this installation of iceaudit "
                        f"(shipped: {', '.join(shipped) or 'none'})",
                        hint="Pass a bank directory with --bank DIR, or build one with `iceaudit bank build`.")
    return folder


def shipped_policy(name_or_path: str | Path) -> Path:
    """A policy file: a path as given, or a shipped policy's bare name.

    Args:
        name_or_path: a path (anything with a folder part or a suffix: the policy
            reader reports a missing file), or a shipped policy's name:
            ``fairness``, ``fairness-strict``, ``smile-release``.

    Raises:
        UserError: a bare name that is neither a file here nor a shipped policy.
    """
    path = Path(name_or_path)
    if path.is_file() or path.parent != Path(".") or path.suffix:
        return path
    shipped = examples_dir() / "policies" / f"{path.name}.toml"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in (examples_dir() / "policies").glob("*.toml"))
    raise UserError(f"no policy file {str(name_or_path)!r}, and no shipped policy has that name "
                    f"(shipped: {', '.join(names)})")


def demo_classifier(name: str) -> tuple[Path, Path]:
    """The shipped FaceLab classifier `name`: (TorchScript file, model card)."""
    folder = examples_dir() / "facelab"
    return folder / f"{name}.pt", folder / f"{name}.toml"


def bank_dir(name_or_path: str | Path) -> Path:
    """Where a bank is: a path that exists (or has a folder part), else a bank's name,
    looked up in ./subspace_bank/ (a checkout's own banks) and then among the shipped ones.

    Args:
        name_or_path: a bank directory, or a bank's name such as ``"demo"``.
    """
    path = Path(name_or_path)
    if path.is_dir() or path.parent != Path("."):
        return path
    if (Path("subspace_bank") / path).is_dir():
        return Path("subspace_bank") / path
    return shipped_bank(str(name_or_path))

"""iceaudit: audit a face classifier with interpretable StyleGAN2 walks.

Public entry points are imported lazily so that `import iceaudit` stays cheap
(the CLI's `--help` must not pay for torch).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("iceaudit")
    except PackageNotFoundError:  # an uninstalled checkout (PYTHONPATH=.)
        return "0.1.0+checkout"


__version__ = _installed_version()

if TYPE_CHECKING:  # pragma: no cover
    from iceaudit.stylegan2.networks import Generator


def load_generator(path_or_name: str, device: Any = "cpu") -> "Generator":
    """Load a StyleGAN2 generator from a file (NVIDIA .pkl, rosinality .pt,
    native .safetensors) or a shipped name such as ``"demo"``."""
    from iceaudit.stylegan2.loaders import load_generator as _load

    return _load(path_or_name, device=device)


def __getattr__(name: str) -> Any:
    # The API lives in iceaudit.api; imported on first use so `import iceaudit` stays cheap.
    if name == "audit":  # the callable subpackage (iceaudit/audit/__init__.py)
        import importlib

        return importlib.import_module("iceaudit.audit")
    if name in ("Audit", "load_bank", "load_classifier"):
        from iceaudit import api

        return getattr(api, name)
    raise AttributeError(f"module 'iceaudit' has no attribute {name!r}")


__all__ = ["Audit", "__version__", "audit", "load_bank", "load_classifier", "load_generator"]

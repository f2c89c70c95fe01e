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


__all__ = ["__version__", "load_generator"]

"""Which classifier files iceaudit may run, and where a factory may come from.

A classifier file is code. TorchScript runs its own ``__setstate__`` when it is
loaded and its own ``forward`` on every batch, and both may call any operator:
``torch.from_file(..., shared=True)`` creates or overwrites any file the user can
write. So iceaudit runs such a file only when the user says they trust where it
came from (``--trust-classifier``, ``trust=True``, or ICEAUDIT_TRUST_CLASSIFIER=1).
The safe routes need no trust:

- ONNX through onnxruntime: a graph of standard operators, no Python, no custom
  operator libraries (iceaudit never registers any);
- a state dict (read with ``torch.load(weights_only=True)``, tensors only) plus a
  factory: an ``nn.Module`` class, or a function annotated to return one, from an
  installed package, or from a ``.py`` file the user names on the command line.

Classifiers shipped inside iceaudit (the FaceLab examples) are part of the
installed code and trusted like it. Models held in memory (a notebook's
``nn.Module``) are the user's own objects and are not checked here.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import os
import sys
import typing
from pathlib import Path
from typing import Callable, Iterator

import torch

from iceaudit.errors import UserError

TRUST_ENV = "ICEAUDIT_TRUST_CLASSIFIER"

SAFE_ROUTES = (
    "Safe routes that need no trust: export the model to ONNX (a .onnx file, run by onnxruntime), "
    "or save its state dict (torch.save(model.state_dict(), path)) and name its network with "
    "--factory package.module:Class from an installed package."
)


def trust_from_env() -> bool:
    """True when ICEAUDIT_TRUST_CLASSIFIER is set to 1/true/yes (a pipeline that runs its own models)."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def is_shipped(path: str | Path) -> bool:
    """True for a classifier file shipped inside iceaudit (the FaceLab examples)."""
    from iceaudit.resources import examples_dir

    try:
        shipped = (examples_dir() / "facelab").resolve()
        return Path(path).resolve().is_relative_to(shipped)
    except (OSError, RuntimeError):
        return False


def check_runnable(path: Path, trusted: bool) -> None:
    """Refuse to load the code-carrying classifier file `path` (TorchScript, or a
    pickle that is not a state dict) unless it is trusted or shipped.

    Args:
        path: the classifier file.
        trusted: the user passed --trust-classifier (or trust=True).
    """
    if trusted or trust_from_env() or is_shipped(path):
        return
    raise UserError(
        f"classifier {path} is TorchScript, which runs its own code when loaded and on every batch; "
        "iceaudit does not run it unless you trust its source (--trust-classifier, or ICEAUDIT_TRUST_CLASSIFIER=1)",
        hint=SAFE_ROUTES,
    )


def is_path_spec(spec: str) -> bool:
    """True for a factory named by file (``nets.py:build``, ``./models/nets.py:Net``)."""
    module = spec.rpartition(":")[0]
    return module.endswith(".py") or "/" in module or "\\" in module


def resolve_factory(spec: str, *, trusted: bool = False) -> Callable[[], torch.nn.Module]:
    """The callable named by a factory `spec`, checked before it is called.

    ``package.module:name`` is imported from the installed packages and explicit
    path entries only: the current directory (``''`` or an implicit ``sys.path[0]``)
    is not searched, so a hostile ``*.py`` beside the user cannot answer to the name.
    ``path/to/file.py:name`` loads that file (a path the user named). Unless
    `trusted`, `name` must be an ``nn.Module`` subclass or a function annotated to
    return one, so that no other callable (``tempfile:mkdtemp``, ``os:getcwd``...) runs.

    Args:
        spec: ``package.module:name`` or ``path/to/file.py:name``.
        trusted: accept any callable (its result is still checked to be an ``nn.Module``).
    """
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr or not attr.replace("_", "a").replace(".", "a").isalnum():
        raise UserError(f"factory {spec!r} must look like package.module:function (or path/to/file.py:function)")
    module = _load_path_module(spec, Path(module_name)) if is_path_spec(spec) else _import_installed(spec, module_name)
    target = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise UserError(f"cannot import factory {spec!r}: {module_name} has no {attr!r}")
    if not callable(target):
        raise UserError(f"factory {spec!r} is a {type(target).__name__}, not a class or function")
    if not trusted and not returns_module(target):
        raise UserError(
            f"factory {spec!r} is neither an nn.Module class nor a function annotated to return one "
            "(def build() -> torch.nn.Module); iceaudit calls no other callable from a model card",
            hint="Annotate the factory's return type, or pass --trust-classifier if you trust the card.",
        )
    return target


def returns_module(target: object) -> bool:
    """True for an ``nn.Module`` subclass, or a function whose return annotation is one."""
    if inspect.isclass(target):
        return issubclass(target, torch.nn.Module)
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        return False
    try:
        hint = typing.get_type_hints(target).get("return")
    except Exception:  # noqa: BLE001 - an annotation that does not evaluate proves nothing
        return False
    return inspect.isclass(hint) and issubclass(hint, torch.nn.Module)


def _import_installed(spec: str, module_name: str):
    cwd = _resolved(os.getcwd())
    with _without_cwd(cwd):
        try:
            module = importlib.import_module(module_name)
        except ImportError as err:
            local = Path(cwd, *module_name.split(".")[:1])
            where = " (a module of that name in the current directory is not imported: name its file instead)" \
                if local.with_suffix(".py").is_file() or (local / "__init__.py").is_file() else ""
            raise UserError(f"cannot import factory {spec!r}: {err}{where}",
                            hint="Install its package, or name the file: --factory path/to/nets.py:build.") from None
        except Exception as err:  # noqa: BLE001 - the module's own import-time failure
            raise UserError(f"cannot import factory {spec!r}: importing {module_name} failed ({type(err).__name__}: {err})") from None
    return module


def _load_path_module(spec: str, file: Path):
    if not file.is_file() or file.suffix != ".py":
        raise UserError(f"factory {spec!r}: {file} is not a .py file")
    name = f"iceaudit_factory_{abs(hash(str(file.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(name, file)
    if module_spec is None or module_spec.loader is None:
        raise UserError(f"factory {spec!r}: cannot load {file}")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001
        raise UserError(f"factory {spec!r}: running {file} failed ({type(err).__name__}: {err})") from None
    return module


@contextlib.contextmanager
def _without_cwd(cwd: str) -> Iterator[None]:
    """Import with the implicit current-directory entries of sys.path removed."""
    saved = list(sys.path)
    implicit = {"", "."}
    if sys.path and _resolved(sys.path[0] or ".") == cwd:
        implicit.add(sys.path[0])
    sys.path[:] = [p for p in sys.path if p not in implicit]
    try:
        yield
    finally:
        sys.path[:] = saved


def _resolved(path: str | Path) -> str:
    try:
        return str(Path(path).resolve())
    except OSError:
        return str(path)

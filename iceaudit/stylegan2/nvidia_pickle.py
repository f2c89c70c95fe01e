"""Read NVIDIA stylegan2-ada-pytorch / stylegan3-style network pickles safely.

An official network pickle (`network-snapshot-*.pkl`, `ffhq.pkl`) is a dict
with `G_ema` and often `G`, `D`, `augment_pipe` and `training_set_kwargs`.
Every network in it was pickled by NVIDIA's `torch_utils.persistence`: the
object reduces to a call `_reconstruct_persistent_obj(meta)` whose `meta`
carries the class name, the *source code of its module* (which the official
loader `exec`s) and the module state (`_parameters`, `_buffers`, `_modules`,
`_init_args`, `_init_kwargs`, ...).

We never execute anything from the file. A restricted unpickler resolves
only the handful of globals such files reference (see `_ALLOWED`), each to a
harmless stand-in: the persistence call builds a `PersistentRecord` (a plain
record of class name, constructor arguments and tensors; `module_src` is
dropped unread), storages are read with `torch.load(weights_only=True)`.
Every other global is refused with a `UserError` that names it. `D` and
`augment_pipe` become records like any other and are simply not used.

`read_network_pickle(path)` returns the records; `generator_from_record`
builds iceaudit's `Generator` from the `G_ema` record by official key names.
"""
from __future__ import annotations

import _compat_pickle
import collections
import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from iceaudit.errors import UserError, brief

if TYPE_CHECKING:  # pragma: no cover
    from iceaudit.stylegan2.networks import Generator

# --- records --------------------------------------------------------------------


@dataclass
class PersistentRecord:
    """What a persistent network object held, without its code."""

    class_name: str
    init_args: tuple = ()
    init_kwargs: dict = field(default_factory=dict)
    parameters: dict[str, torch.Tensor | None] = field(default_factory=dict)
    buffers: dict[str, torch.Tensor | None] = field(default_factory=dict)
    modules: dict[str, Any] = field(default_factory=dict)

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Parameters and buffers of this record and its children, keyed like
        `torch.nn.Module.state_dict()`."""
        out: dict[str, torch.Tensor] = {}
        for name, tensor in {**self.parameters, **self.buffers}.items():
            if tensor is not None:
                out[prefix + name] = tensor
        for name, child in self.modules.items():
            if isinstance(child, PersistentRecord):
                out.update(child.state_dict(prefix + name + "."))
        return out

    def __setstate__(self, state: Any) -> None:  # a BUILD opcode aimed at a record
        raise UserError("malformed network pickle (state applied to a persistent object)")

    def find(self, dotted: str) -> "PersistentRecord | None":
        node: Any = self
        for part in dotted.split("."):
            node = node.modules.get(part) if isinstance(node, PersistentRecord) else None
        return node if isinstance(node, PersistentRecord) else None


# --- stand-ins for the globals an official pickle may name ----------------------


def _reconstruct_persistent_obj(meta: Any) -> PersistentRecord:
    """Stand-in for torch_utils.persistence._reconstruct_persistent_obj: keeps
    the data, ignores `module_src`."""
    if not isinstance(meta, dict) or not isinstance(meta.get("class_name"), str):
        raise UserError("malformed persistent object in the pickle (no class_name)")
    if meta.get("type", "class") != "class":
        raise UserError(f"unsupported persistent object type {meta.get('type')!r} in the pickle")
    state = meta.get("state") or {}
    if not isinstance(state, dict):
        raise UserError(f"malformed state for persistent object {meta['class_name']!r}")

    def tensors(name: str) -> dict:
        table = state.get(name) or {}
        if not isinstance(table, dict):
            raise UserError(f"malformed {name} in persistent object {meta['class_name']!r}")
        for key, value in table.items():
            if value is not None and not isinstance(value, torch.Tensor):
                raise UserError(f"{meta['class_name']}.{key} is not a tensor in the pickle")
        return dict(table)

    modules = state.get("_modules") or {}
    if not isinstance(modules, dict):
        raise UserError(f"malformed _modules in persistent object {meta['class_name']!r}")
    init_args, init_kwargs = state.get("_init_args") or (), state.get("_init_kwargs") or {}
    if not isinstance(init_args, (tuple, list)) or not isinstance(init_kwargs, dict) \
            or not all(isinstance(k, str) for k in init_kwargs):
        raise UserError(f"malformed constructor arguments in persistent object {meta['class_name']!r}")
    return PersistentRecord(
        class_name=meta["class_name"],
        init_args=_plain(tuple(init_args)),
        init_kwargs=_plain(init_kwargs),
        parameters=tensors("_parameters"),
        buffers=tensors("_buffers"),
        modules=dict(modules),
    )


class _EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict: a plain dict that tolerates the
    NEWOBJ/BUILD opcodes a pickled dict subclass uses."""

    def __setstate__(self, state: Any) -> None:
        pass  # instance attributes of an EasyDict are never data; items come via SETITEMS


def _load_storage(data: Any) -> Any:
    """Stand-in for torch.storage._load_from_bytes (which would run
    torch.load(weights_only=False))."""
    if not isinstance(data, (bytes, bytearray)):
        raise UserError("malformed tensor storage in the pickle")
    try:
        return torch.load(io.BytesIO(bytes(data)), weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises many types for bad bytes
        raise UserError(f"a tensor storage in the pickle could not be read safely: {brief(exc)}") from exc


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *rest: Any) -> torch.Tensor:
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UserError("malformed tensor in the pickle (storage is not a tensor storage)")
    return torch._utils._rebuild_tensor_v2(storage, offset, size, stride, *rest[:2])


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> torch.Tensor:
    if not isinstance(data, torch.Tensor):
        raise UserError("malformed parameter in the pickle (not a tensor)")
    return data.detach()


def _latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    """Protocol-2 pickles spell bytes as _codecs.encode(text, 'latin1')."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UserError("malformed bytes object in the pickle")
    return text.encode("latin1")


def _numpy_scalar(*args: Any) -> Any:
    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar
    return scalar(*args)


# (module, name) -> the object the unpickler hands back. Nothing else resolves.
_ALLOWED: dict[tuple[str, str], Callable[..., Any]] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): np.dtype,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    # Protocol <= 3 pickles (Python 3.7 era) spell a set as a call to set().
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _latin1_bytes,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 spellings
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        found = _ALLOWED.get((module, name))
        if found is None:
            raise ForbiddenGlobal(f"{module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise UserError("the pickle uses persistent ids (a torch.save file?), which a network pickle never does")


class ForbiddenGlobal(UserError):
    def __init__(self, qualname: str) -> None:
        hint = "Only official stylegan2-ada-pytorch / stylegan3 network pickles are accepted."
        if qualname.startswith("dnnlib.tflib"):
            hint = ("This looks like a TensorFlow StyleGAN/StyleGAN2 pickle. Convert it to PyTorch in an "
                    "environment you trust (stylegan2-ada-pytorch's legacy.py), then load the result.")
        super().__init__(
            f"refused to load: the pickle references `{qualname}`, which an NVIDIA network "
            "pickle never needs; nothing from the file was executed",
            hint=hint,
        )
        self.qualname = qualname


MAX_KWARGS_DEPTH = 16  # official constructor arguments nest 3 levels (synthesis_kwargs -> block kwargs)


def _plain(value: Any, depth: int = 0) -> Any:
    """EasyDicts and OrderedDicts to plain dicts, numpy scalars to Python; a
    structure nested deeper than MAX_KWARGS_DEPTH is refused (a hostile file)."""
    if depth > MAX_KWARGS_DEPTH:
        raise UserError(f"constructor arguments nested deeper than {MAX_KWARGS_DEPTH} levels: not a network pickle")
    if isinstance(value, dict):
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v, depth + 1) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


# --- reading ----------------------------------------------------------------------


def read_network_pickle(path: str | Path) -> dict[str, Any]:
    """The top-level dict of an official network pickle, with every persistent
    network as a `PersistentRecord`. Executes nothing from the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"no such file: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data.startswith(b"\x80"):
        raise UserError(f"{path} is not a pickle (wrong format)")
    try:
        top = _RestrictedUnpickler(io.BytesIO(data)).load()
    except UserError as err:
        err.message = f"{path}: {err.message}"
        raise
    except Exception as exc:  # truncated/corrupt streams raise many types
        raise UserError(f"{path} is not a readable network pickle (truncated or corrupt: {exc})") from exc
    if isinstance(top, PersistentRecord):
        top = {"G_ema": top}
    if not isinstance(top, dict):
        raise UserError(f"{path} is a pickle but not a network pickle (top level is {type(top).__name__})")
    return top


def generator_record(top: dict[str, Any], path: str | Path = "") -> PersistentRecord:
    """The record to build: `G_ema` (the generator people sample from)."""
    for key in ("G_ema", "G"):
        record = top.get(key)
        if isinstance(record, PersistentRecord):
            return record
    raise UserError(f"{path} holds no generator (no `G_ema` in {sorted(map(str, top))})")


# Generator(z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs, synthesis_kwargs)
_POSITIONAL = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "synthesis_kwargs")


# stylegan3-era kwargs that choose a code path, not the numbers.
_SPEED_ONLY_KWARGS = ("fused_modconv_default",)


def generator_kwargs(record: PersistentRecord) -> dict[str, Any]:
    """Official Generator constructor kwargs from a `G_ema` record.

    stylegan2-ada-pytorch keeps `synthesis_kwargs` as one argument; the
    stylegan3 repository's StyleGAN2 generator takes them as `**kwargs` at the
    top level. Both come out in the stylegan2-ada-pytorch form."""
    if record.class_name != "Generator":
        raise UserError(f"G_ema is a {record.class_name!r}, not a StyleGAN2 Generator")
    kwargs = dict(zip(_POSITIONAL, record.init_args))
    kwargs.update(record.init_kwargs)
    out = {k: kwargs.pop(k) for k in _POSITIONAL[:5] if k in kwargs}
    missing = [k for k in _POSITIONAL[:5] if k not in out]
    if missing:
        raise UserError(f"G_ema's constructor arguments lack {', '.join(missing)}")
    out["mapping_kwargs"] = dict(kwargs.pop("mapping_kwargs", None) or {})
    synthesis_kwargs = dict(kwargs.pop("synthesis_kwargs", None) or {})
    synthesis_kwargs.update(kwargs)  # stylegan3-era: the rest are synthesis kwargs
    for key in _SPEED_ONLY_KWARGS:
        synthesis_kwargs.pop(key, None)
    out["synthesis_kwargs"] = synthesis_kwargs
    return _plain(out)


def is_stylegan3(record: PersistentRecord) -> bool:
    """An alias-free (StyleGAN3-T/-R) generator: its synthesis starts with a Fourier `input`."""
    synthesis = record.modules.get("synthesis")
    return isinstance(synthesis, PersistentRecord) and "input" in synthesis.modules


def stylegan3_kwargs(record: PersistentRecord) -> dict[str, Any]:
    """Official stylegan3 `Generator(z_dim, c_dim, w_dim, img_resolution, img_channels,
    mapping_kwargs, **synthesis_kwargs)` arguments from a `G_ema` record."""
    kwargs = dict(zip(_POSITIONAL[:6], record.init_args))
    kwargs.update(record.init_kwargs)
    missing = [k for k in _POSITIONAL[:5] if k not in kwargs]
    if missing:
        raise UserError(f"G_ema's constructor arguments lack {', '.join(missing)}")
    kwargs["mapping_kwargs"] = dict(kwargs.get("mapping_kwargs") or {})
    return _plain(kwargs)


def load_nvidia_pickle(path: str | Path, device: Any = "cpu") -> Any:
    """iceaudit's generator (StyleGAN2, or StyleGAN3-T/-R) with the weights of an official
    pickle's `G_ema`."""
    from iceaudit.stylegan2.assemble import build_generator

    record = generator_record(read_network_pickle(path), path)
    if is_stylegan3(record):
        G = build_generator(stylegan3_kwargs(record), record.state_dict(), source=str(path), device=device,
                            architecture="stylegan3")
    else:
        G = build_generator(generator_kwargs(record), record.state_dict(), source=str(path), device=device)
    G.provenance = {"format": "nvidia-pickle", "path": str(path), "notes": []}
    return G

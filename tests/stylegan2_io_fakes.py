"""Test helpers: write network pickles with the structure of NVIDIA's official
ones (stylegan2-ada-pytorch `torch_utils.persistence`), without NVIDIA code.

A persistent object pickles as a call `torch_utils.persistence.
_reconstruct_persistent_obj(meta)` with meta = {type, version, module_src,
class_name, state}; `state` is the torch.nn.Module `__dict__` (with
`_parameters`, `_buffers`, `_modules`, hooks, `_init_args`, `_init_kwargs`).
We register tiny fake `torch_utils.persistence` and `dnnlib.util` modules only
while pickling, so the reader under test cannot lean on them.
"""
from __future__ import annotations

import collections
import contextlib
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

# If the reader ever ran the embedded module source, this would fire.
MODULE_SRC = "raise SystemExit('module_src was executed')\n"

_called: list[Any] = []


def _reconstruct_persistent_obj(meta):  # the fake official function
    _called.append(meta)
    raise AssertionError("the real reconstruct function must never be called by iceaudit")


class EasyDict(dict):
    """Like dnnlib.util.EasyDict: a dict with attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name)


@contextlib.contextmanager
def fake_nvidia_modules():
    torch_utils = types.ModuleType("torch_utils")
    persistence = types.ModuleType("torch_utils.persistence")
    dnnlib = types.ModuleType("dnnlib")
    util = types.ModuleType("dnnlib.util")
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    EasyDict.__module__ = "dnnlib.util"
    persistence._reconstruct_persistent_obj = _reconstruct_persistent_obj
    util.EasyDict = EasyDict
    torch_utils.persistence, dnnlib.util = persistence, util
    mods = {"torch_utils": torch_utils, "torch_utils.persistence": persistence, "dnnlib": dnnlib, "dnnlib.util": util}
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class Persistent:
    """Pickles exactly like an official persistent network object."""

    def __init__(self, class_name: str, init_kwargs: dict | None = None, init_args: tuple = ()):
        self.class_name = class_name
        self.parameters: dict[str, torch.Tensor] = collections.OrderedDict()
        self.buffers: dict[str, torch.Tensor] = collections.OrderedDict()
        self.modules: dict[str, Persistent] = collections.OrderedDict()
        self.extra: dict[str, Any] = {}
        self.init_kwargs = init_kwargs or {}
        self.init_args = init_args

    def __reduce__(self):
        state = {
            "training": False,
            "_parameters": collections.OrderedDict(
                (k, torch.nn.Parameter(v.clone(), requires_grad=True)) for k, v in self.parameters.items()),
            "_buffers": collections.OrderedDict((k, v.clone()) for k, v in self.buffers.items()),
            "_non_persistent_buffers_set": set(),
            "_backward_hooks": collections.OrderedDict(),
            "_forward_hooks": collections.OrderedDict(),
            "_forward_pre_hooks": collections.OrderedDict(),
            "_state_dict_hooks": collections.OrderedDict(),
            "_load_state_dict_pre_hooks": collections.OrderedDict(),
            "_modules": self.modules,
            "_init_args": self.init_args,
            "_init_kwargs": self.init_kwargs,
            **self.extra,
        }
        meta = dict(type="class", version=6, module_src=MODULE_SRC, class_name=self.class_name, state=state)
        return (_reconstruct_persistent_obj, (meta,))


_BUFFERS = ("w_avg", "noise_const", "resample_filter",
            "magnitude_ema", "up_filter", "down_filter", "transform", "freqs", "phases")  # the last six: StyleGAN3


def _class_for(path: list[str]) -> str:
    name = path[-1] if path else ""
    if not path:
        return "Generator"
    if name == "mapping":
        return "MappingNetwork"
    if name == "synthesis":
        return "SynthesisNetwork"
    if name.startswith("fc") or name in ("affine", "embed"):
        return "FullyConnectedLayer"
    if name.startswith("b") and name[1:].isdigit():
        return "SynthesisBlock"
    if name in ("conv0", "conv1"):
        return "SynthesisLayer"
    if name == "torgb":
        return "ToRGBLayer"
    if name == "skip":
        return "Conv2dLayer"
    if name == "input":  # StyleGAN3's Fourier features
        return "SynthesisInput"
    if name.startswith("L") and name.count("_") == 2:  # StyleGAN3's L<i>_<size>_<channels>
        return "SynthesisLayer"
    raise KeyError(path)


def generator_tree(state_dict: dict[str, torch.Tensor], init_kwargs: dict) -> Persistent:
    """Persistent objects nested as the official modules, from official keys."""
    root = Persistent("Generator", init_kwargs=init_kwargs)
    for key, tensor in state_dict.items():
        *path, leaf = key.split(".")
        node = root
        for i, part in enumerate(path):
            if part not in node.modules:
                node.modules[part] = Persistent(_class_for(path[: i + 1]))
            node = node.modules[part]
        (node.buffers if leaf in _BUFFERS else node.parameters)[leaf] = tensor.detach()
    root.modules["mapping"].extra.update(w_avg_beta=np.float64(0.995), num_ws=np.int64(3))
    return root


def official_init_kwargs(G, *, stylegan3_era: bool = False) -> Any:
    """G_ema's `_init_kwargs` as the official training scripts store them."""
    kw = G.init_kwargs
    if not stylegan3_era:  # stylegan2-ada-pytorch: EasyDicts, synthesis_kwargs nested
        return EasyDict(z_dim=kw["z_dim"], c_dim=kw["c_dim"], w_dim=kw["w_dim"],
                        img_resolution=kw["img_resolution"], img_channels=kw["img_channels"],
                        mapping_kwargs=EasyDict(kw["mapping_kwargs"]),
                        synthesis_kwargs=EasyDict(kw["synthesis_kwargs"]))
    # stylegan3 repository: synthesis kwargs at the top level
    return EasyDict(z_dim=kw["z_dim"], c_dim=kw["c_dim"], w_dim=kw["w_dim"],
                    img_resolution=kw["img_resolution"], img_channels=kw["img_channels"],
                    mapping_kwargs=EasyDict(kw["mapping_kwargs"]), fused_modconv_default="inference_only",
                    **kw["synthesis_kwargs"])


def training_snapshot(G, *, stylegan3_era: bool = False, extra: dict | None = None) -> dict:
    """A network-snapshot dict: G, D, G_ema, augment_pipe, training_set_kwargs."""
    g_ema = generator_tree(G.state_dict(), official_init_kwargs(G, stylegan3_era=stylegan3_era))
    g_train = generator_tree(G.state_dict(), official_init_kwargs(G, stylegan3_era=stylegan3_era))
    disc = Persistent("Discriminator", init_kwargs=EasyDict(c_dim=0, img_resolution=G.img_resolution))
    disc.modules["b4"] = Persistent("DiscriminatorEpilogue")
    disc.modules["b4"].parameters["weight"] = torch.randn(4, 3)
    aug = Persistent("AugmentPipe", init_kwargs=EasyDict(xflip=1, rotate90=1))
    aug.buffers["p"] = torch.zeros([])
    top = dict(G=g_train, D=disc, G_ema=g_ema, augment_pipe=aug,
               training_set_kwargs=EasyDict(path="~/datasets/faces.zip", resolution=np.int64(G.img_resolution),
                                            use_labels=False, xflip=np.bool_(False), max_size=np.int32(70000)))
    top.update(extra or {})
    return top


def write_pickle(obj: Any, path: Path, protocol: int = 3) -> Path:
    with fake_nvidia_modules():
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


class Evil:
    """Reduces to an arbitrary call, as a malicious pickle would."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)

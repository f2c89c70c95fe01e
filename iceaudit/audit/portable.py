"""Models in a form another process (a Ray worker, possibly on another machine) can rebuild.

A worker gets the very weights the driver audits, not a path to reload: a cluster need
not share a file system, and a file could change between two loads. TorchScript travels
as its archive bytes, ONNX as the model file's bytes, an ``nn.Module`` or a callable by
(cloud)pickle — Ray's own serialisation, used only between processes of one audit
that already trust the model (the driver loaded it first).
"""
from __future__ import annotations

import copy
import io
from dataclasses import dataclass, replace
from typing import Any

import torch

from iceaudit.audit.classifier import Classifier, _OnnxModel
from iceaudit.errors import UserError


@dataclass
class PortableClassifier:
    """A `Classifier` without its device, with its model as bytes or a picklable object."""

    classifier: Classifier  # with ``model`` set to None
    form: str  # "torchscript" | "onnx" | "object"
    payload: Any  # archive bytes, ONNX bytes, or the module / callable itself

    @classmethod
    def of(cls, clf: Classifier) -> "PortableClassifier":
        shell = replace(clf, model=None, device=torch.device("cpu"))
        if clf.kind == "onnx":
            return cls(shell, "onnx", clf.model.model_bytes)
        if isinstance(clf.model, torch.jit.ScriptModule):
            buf = io.BytesIO()
            torch.jit.save(clf.model, buf)
            return cls(shell, "torchscript", buf.getvalue())
        model = clf.model
        if isinstance(model, torch.nn.Module):
            devices = {p.device.type for p in model.parameters()} | {b.device.type for b in model.buffers()}
            if devices - {"cpu"}:
                model = copy.deepcopy(model).cpu()
        return cls(shell, "object", model)

    def restore(self, device: torch.device) -> Classifier:
        if self.form == "onnx":
            return replace(self.classifier, model=_OnnxModel(self.payload), device=torch.device("cpu"))
        if self.form == "torchscript":
            model = torch.jit.load(io.BytesIO(self.payload), map_location=device)
        else:
            model = self.payload
            if isinstance(model, torch.nn.Module):
                model = model.to(device)
        if isinstance(model, torch.nn.Module):
            model.eval()
            for p in model.parameters():
                p.requires_grad_(False)
        return replace(self.classifier, model=model, device=device)


def portable_generator(G: torch.nn.Module) -> torch.nn.Module:
    """G itself when it is on the CPU, else a CPU copy (the driver's G stays where it is)."""
    if all(p.device.type == "cpu" for p in G.parameters()) and all(b.device.type == "cpu" for b in G.buffers()):
        return G
    return copy.deepcopy(G).cpu()


def check_picklable(obj: Any, what: str) -> None:
    """Refuse early, with a message, what a worker could not receive."""
    try:
        import ray.cloudpickle as cloudpickle
    except ImportError:  # pragma: no cover - only called with Ray present
        import pickle as cloudpickle
    try:
        cloudpickle.dumps(obj)
    except Exception as err:  # noqa: BLE001
        raise UserError(f"the {what} cannot be sent to Ray workers ({type(err).__name__}: {err})",
                        hint="Pass it as a file (TorchScript, ONNX, or a state dict with a factory), "
                             "or use --backend local.") from None

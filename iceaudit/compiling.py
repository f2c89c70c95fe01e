"""Optional `torch.compile` of an audit's two networks (`--compile`).

A `Compiler` hands out compiled forms of the generator's synthesis calls and the classifier's
forward, for calls without gradients (the walks, the sampling, the counterfactual search; the
gradient baselines run eager). Compilation happens on a form's first call (and again for each new start layer or
batch shape); a form whose compilation fails (no C compiler, an operation the compiler does not
take) runs eager from then on, after one warning line, so that compiling can only make an
audit faster, never end it. What ran compiled and why anything did not is in `status()`.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

# Which torch.compile backend compiles (a private hook: tests set "aot_eager", which traces and
# runs the same graphs without generating C++, in seconds instead of minutes).
BACKEND_ENV = "ICEAUDIT_COMPILE_BACKEND"
DEFAULT_BACKEND = "inductor"
# Dynamo keeps 8 compiled variants per function by default, then silently runs eager. The
# partial synthesis compiles one variant per start layer (26 style layers at 1024 px), times a
# static and a dynamic batch shape, so the limit is raised while a compiled form runs.
RECOMPILE_LIMIT = 128


@dataclass
class CompileStatus:
    """What a `Compiler` did: `compiled` names the forms that ran compiled, `fallback` says why
    one ran eager instead (the first failure), `used` is true when every form that ran was compiled (`skipped` ones aside)."""

    backend: str
    compiled: list[str] = field(default_factory=list)
    fallback: str | None = None
    skipped: list[str] = field(default_factory=list)  # "what: why" of forms left eager by design

    @property
    def used(self) -> bool:
        return bool(self.compiled) and self.fallback is None


class Compiler:
    """Compiled forms of functions, each falling back to eager on a compile failure.

    Args:
        backend: a torch.compile backend; default: $ICEAUDIT_COMPILE_BACKEND, else inductor.
        warn: where the one warning line goes (default: standard error).
    """

    def __init__(self, backend: str | None = None, warn: Callable[[str], None] | None = None) -> None:
        self.backend = backend or os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND
        self._warn = warn
        self._forms: list[_Form] = []
        self._skipped: dict[str, str] = {}
        self.fallback: str | None = None

    def __reduce__(self):
        # Sent to another process (a Ray worker) as a fresh compiler: compiled code stays here.
        return (Compiler, (self.backend,))

    def wrap(self, owner: Any, attribute: str | None, what: str) -> Callable[..., Any]:
        """The compiled form of ``owner.attribute`` (of ``owner`` itself when `attribute` is
        None), made once per owner and attribute.

        Args:
            owner: the object holding the function (a module, a generator).
            attribute: the method's name, or None to compile ``owner`` as a callable.
            what: the form's name in `status()` and in the warning.
        """
        for form in self._forms:
            if form.owner is owner and form.attribute == attribute:
                return form
        if isinstance(owner, (torch.jit.ScriptModule, torch.jit.ScriptFunction)) and attribute is None:
            # TorchScript runs in its own JIT; torch.compile refuses it. Not a failure: no warning.
            self._skipped[what] = f"{what}: TorchScript (runs in its own JIT; torch.compile does not take it)"
            return owner
        form = _Form(self, owner, attribute, what)
        self._forms.append(form)
        return form

    def status(self) -> CompileStatus:
        """Which forms ran compiled, and the first failure (None if none)."""
        names = [f.what for f in self._forms if f.state == "compiled"]
        return CompileStatus(backend=self.backend, compiled=list(dict.fromkeys(names)), fallback=self.fallback,
                             skipped=list(self._skipped.values()))

    def _failed(self, what: str, err: BaseException) -> None:
        root = _root_cause(err)
        reason = f"{what}: {type(root).__name__}: {_first_line(root)}"
        if self.fallback is None:
            self.fallback = reason
            line = f"warning: --compile: {reason}; running it uncompiled (same results, eager speed)"
            (self._warn or (lambda m: print(m, file=sys.stderr)))(line)


class _Form:
    """One function under torch.compile; `state` is "new", "compiled" or "eager" (after a failure)."""

    def __init__(self, compiler: Compiler, owner: Any, attribute: str | None, what: str) -> None:
        self.compiler, self.owner, self.attribute, self.what = compiler, owner, attribute, what
        self.state = "new"
        self._compiled: Callable[..., Any] | None = None

    def _eager(self) -> Callable[..., Any]:
        return self.owner if self.attribute is None else getattr(self.owner, self.attribute)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.state == "eager" or torch.is_grad_enabled():  # gradients (the baselines) stay eager
            return self._eager()(*args, **kwargs)
        try:
            if self._compiled is None:
                self._compiled = torch.compile(self._eager(), backend=self.compiler.backend)
            with torch._dynamo.config.patch(recompile_limit=max(RECOMPILE_LIMIT, torch._dynamo.config.recompile_limit)):
                out = self._compiled(*args, **kwargs)
        except torch.cuda.OutOfMemoryError:  # the caller halves its batch; not a compile failure
            raise
        except Exception as err:  # noqa: BLE001 - any failure inside the compiler
            # Eager again: if the function itself is at fault it fails here too, with its own error.
            out = self._eager()(*args, **kwargs)
            self.state = "eager"
            self.compiler._failed(self.what, err)
            return out
        self.state = "compiled"
        return out


def _root_cause(err: BaseException) -> BaseException:
    """The innermost cause (dynamo wraps a backend's error: "backend='inductor' raised:")."""
    seen = {id(err)}
    while True:
        inner = getattr(err, "inner_exception", None) or err.__cause__
        if inner is None or id(inner) in seen:
            return err
        seen.add(id(inner))
        err = inner


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""

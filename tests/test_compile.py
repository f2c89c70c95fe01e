"""`--compile` and `--memory-format`: the same scores as the eager, contiguous run; a compile
failure is one warning and an eager audit; what ran is in the record.

Most tests compile with torch's "aot_eager" backend (through the private
ICEAUDIT_COMPILE_BACKEND hook): the same graph capture and replay as the default inductor
backend, without generating C++, so they take seconds. One test uses inductor itself."""
from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch

from cli_helpers import run_cli
from iceaudit.compiling import BACKEND_ENV, Compiler
from iceaudit.memory_format import resolve_memory_format
from iceaudit.record import load_record
from tiny_stylegan import tiny_generator

sys.path.insert(0, str(Path(__file__).parent / "audit"))
from audit_synth import MeanRed, redness_classifier, synthetic_bank  # noqa: E402
from audit_synth import tiny_generator as audit_generator  # noqa: E402

DATA = Path(__file__).parent / "data"
BASE = dict(n=8, n_steps=5, n_null=2, n_bootstrap=200, progress=False, strip_faces=2, n_counterfactual_images=2)


def _broken_backend(gm, example_inputs):
    raise RuntimeError("no C compiler here (test)")


torch._dynamo.register_backend(name="iceaudit_test_broken")(_broken_backend)


@pytest.fixture
def aot_eager(monkeypatch):
    monkeypatch.setenv(BACKEND_ENV, "aot_eager")


def _generator_outputs(G, ws):
    """Full synthesis, and the prefix + suffix from three start layers."""
    with torch.no_grad():
        styles = G.styles(ws)
        outs = [G.synthesis_from_styles(styles)]
        for sl in G.style_layers[1::4]:
            outs.append(G.synthesis_suffix(G.synthesis_prefix(styles, sl.name), styles))
    return outs


@pytest.mark.parametrize("make", [lambda: tiny_generator(jitter=0.05), lambda: __import__(
    "iceaudit.stylegan2.loaders", fromlist=["load_generator"]).load_generator("demo")], ids=["tiny", "demo"])
def test_compiled_synthesis_equals_eager_from_every_start(make, aot_eager):
    G = make()
    torch.manual_seed(0)
    ws = G.mapping(torch.randn(3, G.z_dim), None).detach()
    eager = _generator_outputs(G, ws)
    G.compiler = compiler = Compiler()
    compiled = _generator_outputs(G, ws)
    for a, b in zip(eager, compiled):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    status = compiler.status()
    assert status.backend == "aot_eager" and status.used and status.fallback is None
    assert set(status.compiled) == {"generator.synthesis_from_styles", "generator.synthesis_prefix",
                                    "generator.synthesis_suffix"}


def test_calls_with_gradients_stay_eager(aot_eager):
    G = tiny_generator()
    G.compiler = compiler = Compiler()
    ws = G.mapping(torch.randn(2, G.z_dim), None).detach().requires_grad_(True)
    G.synthesis_from_styles(G.styles(ws)).sum().backward()
    assert ws.grad is not None and compiler.status().compiled == []


def test_a_compiler_travels_as_a_fresh_one(aot_eager):
    G = tiny_generator()
    G.compiler = Compiler("aot_eager")
    with torch.no_grad():
        G.synthesis_from_styles(G.styles(G.mapping(torch.randn(1, G.z_dim), None)))
    copy = pickle.loads(pickle.dumps(G))
    assert copy.compiler is not G.compiler and copy.compiler.backend == "aot_eager"
    assert copy.compiler.status().compiled == [] and G.compiler.status().compiled


def test_a_compiled_audit_equals_the_eager_audit(tmp_path, aot_eager):
    from iceaudit.audit import AuditSettings, run_audit

    G = audit_generator()
    bank = synthetic_bank(G)
    clf = _module_classifier(redness_classifier(G, tmp_path, 16))
    eager = run_audit(clf, G, bank, AuditSettings.of(**BASE))
    fast = run_audit(clf, G, bank, AuditSettings.of(compile=True, memory_format="channels_last",
                                                   out=tmp_path / "compiled", **BASE))
    assert G.compiler is None and clf.compiler is None and clf.memory_format == "contiguous"  # as they were
    assert all(p.is_contiguous() for p in clf.model.parameters())
    torch.testing.assert_close(torch.tensor(fast.results["score"].to_numpy()),
                               torch.tensor(eager.results["score"].to_numpy()), rtol=1e-5, atol=1e-5)
    assert [d.subspace for d in fast.drivers] == [d.subspace for d in eager.drivers]
    assert [d.significant for d in fast.drivers] == [d.significant for d in eager.drivers]
    execution = load_record(tmp_path / "compiled").provenance.execution
    assert execution.memory_format == "channels_last"
    outcome = execution.compile
    assert outcome.requested and outcome.used and outcome.backend == "aot_eager" and outcome.fallback is None
    assert {"classifier", "generator.synthesis_suffix", "generator.synthesis_prefix"} <= set(outcome.compiled)
    plain = eager.record.provenance.execution
    assert not plain.compile.requested and not plain.compile.used and plain.compile.compiled == []
    assert plain.memory_format == "contiguous"  # auto on a CPU
    assert fast.record.settings == eager.record.settings  # what the numbers depend on: unchanged


def _module_classifier(scripted):
    """The redness classifier as an nn.Module (TorchScript is not compiled) with the same card,
    behind an identity 1x1 convolution (a weight whose memory format the audit changes)."""
    from dataclasses import replace

    conv = torch.nn.Conv2d(3, 3, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.eye(3)[:, :, None, None])
    return replace(scripted, model=torch.nn.Sequential(conv, MeanRed()).eval(), kind="module")


def test_a_torchscript_classifier_is_left_to_its_own_jit(tmp_path, aot_eager, capsys):
    clf = redness_classifier(audit_generator(), tmp_path, 8)
    clf.compiler = compiler = Compiler()
    with torch.no_grad():
        clf.decision_score(torch.zeros(2, 3, 16, 16))
    status = compiler.status()
    assert status.compiled == [] and status.fallback is None and "TorchScript" in status.skipped[0]
    assert "warning" not in capsys.readouterr().err


def test_a_compile_failure_is_one_warning_and_an_eager_audit(tmp_path, monkeypatch, capsys):
    from iceaudit.audit import AuditSettings, run_audit

    G = audit_generator()
    bank = synthetic_bank(G)
    clf = _module_classifier(redness_classifier(G, tmp_path, 16))
    eager = run_audit(clf, G, bank, AuditSettings.of(**BASE))
    capsys.readouterr()
    monkeypatch.setenv(BACKEND_ENV, "iceaudit_test_broken")
    failed = run_audit(clf, G, bank, AuditSettings.of(compile=True, out=tmp_path / "broken", **BASE))
    err = capsys.readouterr().err
    assert err.count("warning: --compile") == 1 and "no C compiler here (test)" in err
    assert (failed.results["score"].to_numpy() == eager.results["score"].to_numpy()).all()  # eager: bit for bit
    outcome = load_record(tmp_path / "broken").provenance.execution.compile
    assert outcome.requested and outcome.used is False and outcome.compiled == [] and "no C compiler here (test)" in outcome.fallback


def test_a_model_that_fails_eager_too_keeps_its_own_error(aot_eager):
    from iceaudit.audit.classifier import Classifier, ModelCard
    from iceaudit.errors import UserError

    clf = Classifier(torch.nn.Conv2d(5, 1, 3), ModelCard(input_size=(8, 8)), kind="module")  # 3 channels in, 5 expected
    clf.compiler = Compiler()
    with pytest.raises(UserError, match="failed on input of shape"), torch.no_grad():
        clf.decision_score(torch.zeros(2, 3, 8, 8))


class _Flattens(torch.nn.Module):
    """A classifier that flattens its feature map with .view(), which channels_last refuses."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y.view(y.shape[0], -1).mean(dim=1)


def test_auto_keeps_contiguous_for_a_classifier_that_cannot_run_channels_last():
    from iceaudit.audit.classifier import Classifier, ModelCard
    from iceaudit.audit.runner import _accelerated
    from iceaudit.audit.settings import AuditSettings

    G = tiny_generator()
    pooled = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    for model, wanted, got in ((_Flattens(), "auto", "contiguous"), (pooled, "auto", "channels_last"),
                               (_Flattens(), "channels_last", "channels_last")):
        clf = Classifier(model.eval(), ModelCard(), kind="module")
        weight = next(p for p in model.parameters() if p.ndim == 4)
        with _accelerated(G, clf, AuditSettings.of(memory_format=wanted), torch.device("cuda")):  # auto's CUDA rule
            assert clf.memory_format == got
            assert weight.is_contiguous(memory_format=torch.channels_last if got == "channels_last"
                                        else torch.contiguous_format)
            assert not weight.is_contiguous() if got == "channels_last" else True
        assert clf.memory_format == "contiguous" and weight.is_contiguous()


def test_the_memory_format_rule():
    assert resolve_memory_format("auto", torch.device("cpu")) == "contiguous"
    assert resolve_memory_format("auto", torch.device("cuda")) == "channels_last"
    assert resolve_memory_format("contiguous", torch.device("cuda")) == "contiguous"
    assert resolve_memory_format("channels_last", torch.device("cpu")) == "channels_last"


def test_old_summaries_load_without_the_new_fields():
    from iceaudit.record import Execution, Provenance
    from iceaudit.record.codec import from_json

    raw = json.loads((DATA / "report_baselines" / "summary.json").read_text())
    assert "execution" not in raw["provenance"]
    assert load_record(DATA / "report_baselines").provenance.execution is None
    older = from_json(Provenance, {"execution": {"backend": "local", "workers": 1, "units": 3}})  # before --compile
    assert older.execution == Execution(backend="local", workers=1, units=3)
    assert older.execution.compile is None and older.execution.memory_format is None


def test_bad_values_are_one_message(capsys, tmp_path):
    import iceaudit
    from iceaudit.errors import UserError

    code, _, err = run_cli(capsys, "audit", "--classifier", "x.onnx", "--out", str(tmp_path / "a"),
                           "--memory-format", "nhwc")
    assert code == 2 and "--memory-format must be one of auto, channels_last, contiguous" in err
    assert "Traceback" not in err
    code, _, err = run_cli(capsys, "audit", "--classifier", "x.onnx", "--out", str(tmp_path / "b"), "--compile=yes")
    assert code == 2 and "--compile" in err and "Traceback" not in err
    with pytest.raises(UserError, match="--compile is a switch: True or False"):
        iceaudit.audit("x.onnx", out=tmp_path / "c", compile="yes")


def test_help_says_what_compile_does(capsys):
    code, out, _ = run_cli(capsys, "audit", "--help")
    text = " ".join(out.replace("│", " ").split())
    assert code == 0 and "--compile" in text and "torch.compile" in text and "eager after one warning" in text
    assert "--memory-format" in text and "channels_last" in text


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="inductor needs a C compiler")
def test_inductor_compiles_synthesis_and_classifier(monkeypatch):
    """The default backend, really generating code (30 s on this 2-core CPU with an empty
    inductor cache, 12 s with a warm one)."""
    from iceaudit.audit.classifier import Classifier, ModelCard

    monkeypatch.delenv(BACKEND_ENV, raising=False)
    G = tiny_generator(jitter=0.05)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(4, 1)).eval()
    clf = Classifier(model, ModelCard(input_size=(16, 16)), kind="module")
    with torch.no_grad():
        styles = G.styles(G.mapping(torch.randn(4, G.z_dim), None))
        start = G.style_layers[3].name
        ref = clf.decision_score(G.synthesis_suffix(G.synthesis_prefix(styles, start), styles))
        G.compiler = clf.compiler = compiler = Compiler()
        got = clf.decision_score(G.synthesis_suffix(G.synthesis_prefix(styles, start), styles))
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    status = compiler.status()
    assert status.backend == "inductor" and status.used
    assert set(status.compiled) == {"generator.synthesis_prefix", "generator.synthesis_suffix", "classifier"}

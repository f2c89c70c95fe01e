"""An audit never dies of GPU out-of-memory: the batch is halved and the work redone.

No GPU here, so the memory cap is forced: a classifier that raises torch's CUDA
out-of-memory error for any batch above a cap, exactly where a real cap would."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from audit_synth import redness_classifier
from iceaudit.audit import AuditSettings, run_audit
from iceaudit.audit.units import halving_on_oom
from iceaudit.errors import UserError

N = 12


class MemoryCap:
    """The wrapped model, but any batch larger than `cap` images is 'out of memory'."""

    def __init__(self, model, cap: int) -> None:
        self.model, self.cap, self.refused, self.largest = model, cap, 0, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.cap:
            self.refused += 1
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (forced cap {self.cap})")
        self.largest = max(self.largest, x.shape[0])
        return self.model(x)

    def to(self, device):
        return self


def _settings(**kw) -> AuditSettings:
    return AuditSettings.of(n=N, n_steps=5, n_null=3, n_bootstrap=300, progress=False, shard_faces=6, **kw)


def test_halving_tries_half_the_batch_until_it_fits():
    tried = []

    def run(batch):
        tried.append(batch)
        if batch > 5:
            raise torch.cuda.OutOfMemoryError("forced")
        return batch * 10

    assert halving_on_oom(run, 48) == (30, 3)
    assert tried == [48, 24, 12, 6, 3]
    with pytest.raises(ValueError):  # other errors are not swallowed
        halving_on_oom(lambda b: (_ for _ in ()).throw(ValueError("bad")), 8)


def test_an_audit_under_a_memory_cap_halves_its_batch_and_gives_the_same_result(G, bank, tmp_path):
    clf = redness_classifier(G, tmp_path, N)
    free = run_audit(clf, G, bank, _settings(batch_images=40))
    capped_model = MemoryCap(clf.model, cap=7)
    capped = run_audit(replace(clf, model=capped_model), G, bank, _settings(batch_images=40, out=tmp_path / "capped"))
    assert capped_model.refused > 0 and capped_model.largest <= 7
    assert capped.record.settings.batch_images == 5  # 40 → 20 → 10 → 5, recorded as run
    # a batch's images are computed independently: the same numbers to float32 rounding
    np.testing.assert_allclose(capped.results["score"], free.results["score"], rtol=1e-5, atol=1e-6)
    assert [d.subspace for d in capped.drivers] == [d.subspace for d in free.drivers]
    assert [d.significant for d in capped.drivers] == [d.significant for d in free.drivers]
    assert (tmp_path / "capped" / "summary.json").is_file()


def test_when_one_image_does_not_fit_the_audit_stops_with_one_message(G, bank, tmp_path):
    clf = redness_classifier(G, tmp_path, N)
    with pytest.raises(UserError, match="out of GPU memory"):
        run_audit(replace(clf, model=MemoryCap(clf.model, cap=0)), G, bank, _settings(batch_images=8))


def test_a_classifier_that_fits_two_images_but_not_eight_still_runs_every_stage(G, bank, tmp_path):
    """Validation (2 images) passes; calibration, walks and images all meet the cap."""
    clf = redness_classifier(G, tmp_path, N)
    capped_model = MemoryCap(clf.model, cap=2)
    res = run_audit(replace(clf, model=capped_model), G, bank, _settings(batch_images=8, out=tmp_path / "a"))
    assert capped_model.largest == 2 and res.record.settings.batch_images == 2


def test_batch_for_memory_plans_for_a_share_of_the_free_memory():
    from iceaudit.audit.walking import batch_for_memory

    gib = 1 << 30
    assert batch_for_memory(10 * gib, 0.1 * gib) == 60  # 60 % of 10 GiB at 0.1 GiB an image
    assert batch_for_memory(10 * gib, 0.1 * gib, share=0.3) == 30
    assert batch_for_memory(100 * gib, 1 << 20) == 1024  # the ceiling
    assert batch_for_memory(1 << 20, gib) == 1  # nothing fits: one image, and the OOM halving has the last word


def test_memory_batch_sizes_from_the_measured_peak_of_a_probe(G, bank, tmp_path, monkeypatch):
    """The CUDA probe's arithmetic, with torch.cuda's memory counters stood in for (no GPU here)."""
    from iceaudit.audit import walking

    clf = redness_classifier(G, tmp_path, N)
    seen = []
    counters = {"allocated": 1000, "peak": 1000 + 2 * 3_000}  # the probe's 2 images took 3,000 bytes each
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: counters["allocated"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: counters["peak"])
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (100_000, 200_000))
    score = lambda images: seen.append(images.shape[0]) or clf.decision_score(images)  # noqa: E731
    assert walking.memory_batch(G, score, torch.device("cpu")) == 20  # 0.6 * 100,000 / 3,000
    assert seen == [2]


def test_a_resumed_audit_keeps_the_batch_it_started_with(G, bank, tmp_path):
    """An automatic batch (sized to free memory on a GPU) must not change the run key on --resume."""
    clf = redness_classifier(G, tmp_path, N)
    first = run_audit(clf, G, bank, _settings(batch_images=7, out=tmp_path / "a"))
    again = run_audit(clf, G, bank, _settings(out=tmp_path / "a", resume=True))  # no --batch given
    assert again.record.settings.batch_images == first.record.settings.batch_images == 7
    np.testing.assert_array_equal(again.results["score"], first.results["score"])
    with pytest.raises(UserError, match="batch_images"):  # an explicit other batch is another audit
        run_audit(clf, G, bank, _settings(batch_images=9, out=tmp_path / "a", resume=True))

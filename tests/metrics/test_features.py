import json
import os

import pytest
import torch

from pygan.metrics.feature_net import CLASSES, INFO_FILE, WEIGHTS_FILE, FeatureNet, emoji_class, load_feature_net
from pygan.metrics.features import BundledFeatures, InceptionFeatures, get_feature_extractor


def test_bundled_weights_are_small_and_load_safely():
    assert os.path.getsize(WEIGHTS_FILE) < 5 * 2 ** 20
    state = torch.load(WEIGHTS_FILE, map_location="cpu", weights_only=True)
    net = FeatureNet()
    net.load_state_dict(state)               # strict: every key matches
    assert state["head.weight"].shape[0] == len(CLASSES)
    info = json.load(open(INFO_FILE))
    assert info["classes"] == list(CLASSES) and info["held_out_accuracy"] > 0.8


def test_bundled_net_classifies_digits(emoji32):
    from pygan.data import get_dataset

    digits = get_dataset("mnist", 32)
    idx = torch.arange(0, 5000, 50)             # 100 digits, all classes
    net = load_feature_net()
    with torch.no_grad():
        pred = net(digits.images[idx].expand(-1, 3, -1, -1).float().div(127.5).sub(1)).argmax(1)
    assert (pred == digits.labels[idx]).float().mean() > 0.8


def test_bundled_features_shapes_and_input_forms(emoji32):
    f = BundledFeatures()
    x = emoji32[:4]
    a = f(x)                                              # uint8 (N, 3, 32, 32)
    b = f(x.float().div(127.5).sub(1))                    # float in [-1, 1]
    assert a.shape == (4, 256) and torch.allclose(a, b, atol=1e-5)
    assert f(torch.zeros(2, 1, 28, 28)).shape == (2, 256)     # grey, other size
    assert f(torch.zeros(2, 3, 64, 64)).shape == (2, 256)
    assert not f.training and f.train().training is False


def test_emoji_classes():
    assert CLASSES[emoji_class("1f600")] == "emoji/1f6"
    assert CLASSES[emoji_class("1f44b-1f3fb")] == "emoji/1f4"
    assert CLASSES[emoji_class("2764")] == "emoji/other"


def test_missing_inception_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no file at .*nope\.pth.*--inception-weights PATH"):
        InceptionFeatures(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05"):
        get_feature_extractor("inception", None)
    with pytest.raises(ValueError, match="feature extractor must be 'bundled' or 'inception'"):
        get_feature_extractor("vgg")


def test_wrong_file_is_rejected(tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not an InceptionV3 state_dict"):
        InceptionFeatures(path)


def test_inception_loads_a_torchvision_state_dict(tmp_path):
    # a randomly initialised InceptionV3 with the FID port's 1008 classes stands in for the
    # real weights (which cannot be downloaded here): loading, resizing and 2048-d output
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, aux_logits=False, init_weights=False, num_classes=1008)
    path = tmp_path / "inception.pth"
    torch.save(net.state_dict(), path)
    f = InceptionFeatures(path)
    with torch.no_grad():
        out = f(torch.zeros(1, 1, 32, 32))
    assert out.shape == (1, 2048) and f.num_features == 2048
    assert torch.isfinite(out).all()

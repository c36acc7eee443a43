"""The relit render's whole-face skin-tone match (:mod:`vidswap.appearance.skin_tone`): exact answers on synthetic
textures with a known colour cast, features that must not vote, and the detail left untouched."""

from __future__ import annotations

import pytest
import torch

from vidswap.appearance.skin_tone import SkinToneParams, clean_skin, skin_tone_gain, weighted_quantile


def test_weighted_quantile_is_the_value_where_the_cumulative_weight_reaches_q():
    v = torch.tensor([4.0, 1.0, 3.0, 2.0]).reshape(1, 1, 2, 2)
    assert float(weighted_quantile(v, torch.ones(1, 1, 2, 2))) == 2.0  # cum 1,2,3,4: the first reaching 2
    w = torch.tensor([5.0, 0.0, 1.0, 0.0]).reshape(1, 1, 2, 2)  # all but 4 and 3 weigh nothing
    assert float(weighted_quantile(v, w)) == 4.0
    two = torch.cat([v, -v], 1)
    assert weighted_quantile(two, torch.ones(1, 1, 2, 2)).flatten().tolist() == [2.0, -3.0]


def _scene(seed: int = 0):
    """1000 skin texels (a 40 x 25 texture) under a random light: the plate's skin colour ``cp`` with stubble on
    100 texels; the source's skin ``cs`` times a detail pattern (340 texels at 1, 150 at 0.95, 150 at 1.05) and
    360 texels of glasses rim at 0.3. Returns expected, plate, weight, light, skin, cs, cp."""
    g = torch.Generator().manual_seed(seed)
    n = 1000
    pattern = torch.cat([torch.full((360,), 0.3), torch.ones(340), torch.full((150,), 0.95), torch.full((150,), 1.05)])
    stubble = torch.ones(n)
    stubble[400:500] = 0.5  # on texels of the source's plain skin
    perm = torch.randperm(n, generator=g)
    pattern, stubble = pattern[perm], stubble[perm]
    cs = torch.tensor([0.62, 0.38, 0.27]).view(1, 3, 1)  # an orange cast
    cp = torch.tensor([0.55, 0.42, 0.36]).view(1, 3, 1)  # the plate's paler skin
    light = (0.3 + torch.rand(1, 1, n, generator=g)).expand(1, 3, n)
    shape = (1, 3, 40, 25)
    expected = (cs * pattern.view(1, 1, n) * light).reshape(shape)
    plate = (cp * stubble.view(1, 1, n) * light).reshape(shape)
    weight = torch.ones(1, 1, 40, 25)
    return expected, plate, weight, light.reshape(shape), torch.ones(1, 1, 40, 25), cs, cp


def test_a_known_colour_cast_is_brought_exactly_to_the_plates_skin():
    expected, plate, weight, light, skin, cs, cp = _scene()
    gain = skin_tone_gain(expected, plate, weight, light, skin)
    assert gain.shape == (1, 3, 1, 1)
    assert torch.allclose(gain.flatten(), (cp / cs).flatten(), rtol=1e-5)
    # applied, the source's plain skin is the plate's colour exactly, and every texel keeps its detail ratio
    matched = expected * gain
    assert torch.allclose(skin_tone_gain(matched, plate, weight, light, skin), torch.ones(1, 3, 1, 1), rtol=1e-5)
    ratio = matched / expected
    assert torch.allclose(ratio, ratio[..., :1, :1].expand_as(ratio), rtol=1e-6)


def test_rims_and_stubble_do_not_vote():
    expected, plate, weight, light, skin, cs, cp = _scene(seed=1)
    clean = clean_skin(expected / light, plate / light, skin, 0.12)
    assert float(clean.sum()) == 540.0  # 1000 - 360 rim - 100 stubble
    # with every texel voting, the rims (360) move the median off the plain skin
    loose = skin_tone_gain(expected, plate, weight, light, skin, SkinToneParams(detail_limit=10.0))
    assert not torch.allclose(loose.flatten(), (cp / cs).flatten(), rtol=1e-3)


def test_none_unseen_and_clamped():
    expected, plate, weight, light, skin, cs, cp = _scene()
    assert torch.equal(skin_tone_gain(expected, plate, weight, light, skin, SkinToneParams(method="none")),
                       torch.ones(1, 3, 1, 1))
    unseen = weight * 0.2  # below min_visibility everywhere: nothing to fit on
    assert torch.equal(skin_tone_gain(expected, plate, unseen, light, skin), torch.ones(1, 3, 1, 1))
    far = skin_tone_gain(expected, plate * 10.0, weight, light, skin)
    assert far.flatten().tolist() == pytest.approx([2.0, 2.0, 2.0])
    with pytest.raises(ValueError, match="skin tone method"):
        SkinToneParams(method="lab")


def test_the_relit_renderer_applies_the_gain_once_per_track_and_keeps_the_detail():
    """``relit_skin_tone: gain``: a track whose skin is the render's times a known cast gets exactly that cast on
    the source's albedo, a constant per channel (every texel's detail ratio kept, the weight channel untouched);
    ``none`` (the default) leaves the albedo as it is. Config values are checked."""
    import numpy as np

    from vidswap.appearance.lighting import sh_shading
    from vidswap.appearance.track import TrackAppearance
    from vidswap.faces.pose import canonical_face
    from vidswap.swap.geometric import GeometricSwapConfig, GeometricSwapCore

    core = GeometricSwapCore(GeometricSwapConfig(relit_skin_tone="gain"))
    assert core.relit.skin_tone.method == "gain"
    assert GeometricSwapConfig().relit_skin_tone == "none"
    with pytest.raises(ValueError, match="relit_skin_tone must be one of"):
        GeometricSwapConfig(relit_skin_tone="lab")
    g = torch.Generator().manual_seed(3)
    albedo = torch.cat([1.0 + 0.02 * torch.rand(1, 3, 256, 256, generator=g), torch.rand(1, 1, 256, 256, generator=g)],
                       1)
    lighting = torch.zeros(1, 1, 9)
    lighting[0, 0, 0] = 2.0  # the constant band only: the same shading on every normal
    shade = float(sh_shading(torch.tensor([0.0, 0.0, -1.0]).view(1, 3, 1), lighting)[0, 0, 0])
    u = 128
    broad = torch.tensor([0.5, 0.4, 0.3]).view(3, 1, 1).expand(3, u, u)
    cast = torch.tensor([0.8, 1.0, 1.25]).view(3, 1, 1)
    from vidswap.appearance.relight import resize_texture

    mean = resize_texture(albedo[:, :3], u)[0] * broad * shade * cast
    f16 = lambda t: np.asarray(t, np.float32)  # noqa: E731
    model = TrackAppearance(mean=f16(mean), weight=f16(torch.ones(1, u, u)), broad=f16(broad),
                            lighting=f16(lighting[0]), edge_blur=np.asarray([np.nan], np.float32), frames=1)
    landmarks = (canonical_face().float() * 100.0 + 400.0)[None]
    out = core.relit.track_albedo(albedo, model, landmarks)
    ratio = out[:, :3] / albedo[:, :3]
    assert torch.allclose(ratio, cast.view(1, 3, 1, 1).expand_as(ratio), rtol=1e-4)
    assert torch.equal(out[:, 3:], albedo[:, 3:])
    core.relit.skin_tone = SkinToneParams(method="none")
    assert core.relit.track_albedo(albedo, model, landmarks) is albedo


def test_the_colour_std_limit_reaches_the_colour_match():
    from vidswap.composite.compositor import CompositeConfig, composite_params
    from vidswap.config import ConfigError

    assert composite_params(CompositeConfig(), 0).colour.max_std_ratio == 3.0
    assert composite_params(CompositeConfig(colour_std_limit=1.4), 0, relit=True).colour.max_std_ratio == 1.4
    with pytest.raises(ConfigError, match="colour_std_limit must be in"):
        CompositeConfig(colour_std_limit=0.5)

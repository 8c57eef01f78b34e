"""AU attention maps: peaks at the landmark-derived EAC-Net/JAA-Net centres of a hand-made landmark set."""

import numpy as np
import pytest
import torch

from aulib.data.au_maps import au_attention_maps, au_centres
from aulib.data.transforms import IBUG_MIRROR


def _landmarks() -> torch.Tensor:
    """A hand-made 68-point set on a 224 image: everything parked at the bottom-left corner except the
    points the rules below use. Ruler r = |x39 - x42| = 24."""
    lm = torch.full((68, 2), 2.0)
    pts = {39: (100, 96), 42: (124, 96),  # inner eye corners -> r = 24
           21: (40, 88), 22: (184, 88),  # AU1: shifted up by r/2 = 12 -> y 76
           48: (72, 168), 54: (152, 168),  # AU12: no shift
           41: (56, 104), 46: (168, 104)}  # AU6: shifted down by r = 24 -> y 128
    for i, (x, y) in pts.items():
        lm[i] = torch.tensor([x, y], dtype=torch.float32)
    return lm


def test_centres_follow_the_rules_by_hand():
    c = au_centres(_landmarks(), [1, 12, 6])  # (K, 2 sides, xy)
    expected = torch.tensor([[[40, 76], [184, 76]], [[72, 168], [152, 168]], [[56, 128], [168, 128]]],
                            dtype=torch.float32)
    torch.testing.assert_close(c, expected)


@pytest.mark.parametrize("variant", ["ellipse", "square"])
def test_maps_peak_at_the_centres(variant):
    maps = au_attention_maps(_landmarks(), [1, 12, 6], 224, out_size=14, variant=variant)  # (3, 14, 14)
    assert maps.shape == (3, 14, 14)
    cell = 224 / 14  # 16 px per cell
    for k, centres in enumerate([[(40, 76), (184, 76)], [(72, 168), (152, 168)], [(56, 128), (168, 128)]]):
        m = maps[k]
        assert 0.0 <= float(m.min()) and float(m.max()) <= 1.0 + 1e-6
        for x, y in centres:
            r, c = int(y // cell), int(x // cell)
            # the centre's cell holds the map's maximum (up to the neighbouring cell of the same blob)
            assert float(m[r, c]) >= 0.9 * float(m.max())
        # far from both centres the map is empty
        assert float(m[0, 7]) < 1e-3 and float(m[13, 0]) < 1e-3


def test_left_right_merged_by_max_and_maps_follow_a_flip():
    lm = _landmarks()
    maps = au_attention_maps(lm, [1, 12], 224)
    flipped = lm.clone()
    flipped[:, 0] = 223 - flipped[:, 0]
    flipped = flipped[IBUG_MIRROR]  # landmark indices swap sides under a mirror
    maps_f = au_attention_maps(flipped, [1, 12], 224)
    torch.testing.assert_close(maps_f, maps.flip(-1), atol=0.02, rtol=0)


def test_batched_equals_single_and_numpy_input():
    lm = _landmarks()
    batch = torch.stack([lm, lm + 5])
    maps = au_attention_maps(batch, [1, 2, 4], 224)
    torch.testing.assert_close(maps[0], au_attention_maps(lm.numpy(), [1, 2, 4], 224))


def test_unknown_au_and_variant_give_clear_errors():
    with pytest.raises(KeyError, match="AUs with a rule"):
        au_attention_maps(_landmarks(), [1, 5], 224)
    with pytest.raises(ValueError, match="choose one of"):
        au_attention_maps(_landmarks(), [1], 224, variant="circle")
    with pytest.raises(ValueError, match="68, 2"):
        au_centres(np.zeros((10, 2)), [1])

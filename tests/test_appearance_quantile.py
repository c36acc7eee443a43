"""vidswap.appearance.quantile: the weighted quantile along any dimension, exact answers."""
import torch

from vidswap.appearance.quantile import weighted_quantile_along


def test_weighted_quantile_takes_the_first_value_whose_cumulative_weight_reaches_q():
    v = torch.tensor([4.0, 1.0, 3.0, 2.0])
    assert float(weighted_quantile_along(v, torch.ones(4), 0)) == 2.0  # cum 1,2,3,4 >= 2 at the 2nd value: lower median
    assert float(weighted_quantile_along(v, torch.tensor([0.0, 0.0, 0.0, 1.0]), 0)) == 2.0  # all weight on one value
    assert float(weighted_quantile_along(v, torch.tensor([1.0, 1.0, 1.0, 5.0]), 0)) == 2.0
    assert float(weighted_quantile_along(v, torch.tensor([1.0, 1.0, 5.0, 1.0]), 0)) == 3.0
    assert float(weighted_quantile_along(v, torch.ones(4), 0, q=0.9)) == 4.0
    assert float(weighted_quantile_along(v, torch.ones(4), 0, q=0.0)) == 1.0


def test_weighted_quantile_reduces_only_the_named_dimension():
    v = torch.tensor([[[1.0, 10.0], [5.0, 30.0], [3.0, 20.0]]])  # (1, 3, 2)
    w = torch.ones_like(v)
    assert weighted_quantile_along(v, w, 1).tolist() == [[3.0, 20.0]]
    assert weighted_quantile_along(v, w, 2).tolist() == [[1.0, 5.0, 3.0]]  # lower of each pair
    assert weighted_quantile_along(v.transpose(0, 1), w.transpose(0, 1), 0).tolist() == [[3.0, 20.0]]

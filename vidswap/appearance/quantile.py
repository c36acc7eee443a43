"""Weighted quantiles along one dimension of a batched tensor (robust statistics of the appearance model)."""
from __future__ import annotations

from torch import Tensor

__all__ = ["weighted_quantile_along"]


def weighted_quantile_along(values: Tensor, weights: Tensor, dim: int, q: float = 0.5) -> Tensor:
    """The weighted ``q``-quantile of ``values`` along ``dim``: the smallest value whose cumulative weight (in
    ascending order of the values) reaches ``q`` of the total.

    values: (..., N, ...) with N at ``dim``; weights >= 0, the same shape (expand it first) -> values with ``dim``
    removed. With equal weights and an even N, q = 0.5 gives the lower median."""
    order = values.argsort(dim)
    vs, ws = values.gather(dim, order), weights.gather(dim, order)
    cum = ws.cumsum(dim)
    total = cum.narrow(dim, cum.shape[dim] - 1, 1)
    idx = (cum < total * q).sum(dim, keepdim=True).clamp(max=values.shape[dim] - 1)
    return vs.gather(dim, idx).squeeze(dim)

"""Amortised flow posteriors: exact log-det-Jacobians and a better ELBO than mean field."""

import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from torch import nn
from torch.autograd.functional import jacobian

from inference.marginal_likelihood import importance_log_likelihood
from inference.svi import fit_svi
from zoo.models.amortized_flows import FLOW_KINDS, AmortizedFlow


def _random_flow(kind: str, dim: int = 3, context_dim: int = 4, k: int = 3) -> AmortizedFlow:
    torch.manual_seed(1)
    flow = AmortizedFlow(kind, dim, context_dim, k)
    with torch.no_grad():  # move far from the near-identity initialisation
        for p in flow.parameters():
            p.normal_(0.0, 0.5)
    return flow


@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_each_transform_logdet_matches_autograd(kind):
    flow = _random_flow(kind)
    context = torch.randn(4, dtype=torch.float64)
    flow = flow.double()
    for t in flow.transforms(context):
        x = torch.randn(3, dtype=torch.float64)
        y = t(x)
        logdet = t.log_abs_det_jacobian(x, y)  # uses the forward pass just cached
        jac = jacobian(lambda v: t(v), x)
        # float64: agreement to rounding error
        assert torch.allclose(logdet, torch.linalg.slogdet(jac).logabsdet, atol=1e-9)


@pytest.mark.parametrize("kind", FLOW_KINDS)
def test_stack_density_matches_change_of_variables(kind):
    """Batched log q(z) of the whole stack = log N(z0) - log|det dz/dz0| per point (autograd)."""
    flow = _random_flow(kind).double()
    context = torch.randn(5, 4, dtype=torch.float64)  # a batch of 5 contexts
    loc = torch.randn(5, 3, dtype=torch.float64)
    scale = torch.rand(5, 3, dtype=torch.float64) + 0.5
    base = dist.Normal(loc, scale).to_event(1)

    def push(v, ts):
        for t in ts:
            v = t(v)
        return v

    ts = flow.transforms(context)
    z0 = base.rsample(torch.Size([2]))  # (particles, batch, dim)
    z = push(z0, ts)
    log_q = dist.TransformedDistribution(base, ts).log_prob(z)  # scored through the caches
    assert log_q.shape == (2, 5)
    # flow.distribution builds the same density
    assert flow.distribution(loc, scale, context).batch_shape == (5,)
    for p in range(2):
        for b in range(5):
            ts_b = flow.transforms(context[b])
            jac = jacobian(lambda v: push(v, ts_b), z0[p, b])
            expected = (dist.Normal(loc[b], scale[b]).to_event(1).log_prob(z0[p, b])
                        - torch.linalg.slogdet(jac).logabsdet)
            assert torch.allclose(log_q[p, b], expected, atol=1e-9)


# ------------------------------------------------------------------ mean field vs flows
RHO = 0.95
#: the best mean-field Gaussian to N(0, [[1, rho], [rho, 1]]) has KL = -0.5 log(1 - rho^2)
MEAN_FIELD_BEST_ELBO = 0.5 * math.log(1 - RHO**2)  # = -1.164 (log Z = 0)


def _target(x):
    cov = torch.tensor([[1.0, RHO], [RHO, 1.0]])
    with pyro.plate("data", len(x), dim=-1):
        pyro.sample("z", dist.MultivariateNormal(torch.zeros(2), cov))


class _ToyGuide(nn.Module):
    """A Gaussian (optionally with an amortised flow on top) fed the dummy datum as context."""

    def __init__(self, kind: str | None, num_flows: int):
        super().__init__()
        self.loc = nn.Parameter(torch.zeros(2))
        self.raw_scale = nn.Parameter(torch.zeros(2))
        self.flow = AmortizedFlow(kind, 2, 1, num_flows) if kind else None

    def forward(self, x):
        pyro.module("toy_guide", self)
        with pyro.plate("data", len(x), dim=-1):
            loc = self.loc.expand(len(x), 2)
            scale = nn.functional.softplus(self.raw_scale).expand(len(x), 2)
            if self.flow is None:
                q = dist.Normal(loc, scale).to_event(1)
            else:
                q = self.flow.distribution(loc, scale, x)
            pyro.sample("z", q)


def _fitted_elbo(kind: str | None, num_flows: int) -> float:
    torch.manual_seed(0)
    guide = _ToyGuide(kind, num_flows)
    x = torch.ones(1, 1)
    fit_svi(_target, {"x": x}, guide=guide, elbo="trace", num_particles=8,
            vectorize_particles=True, num_steps=400, lr=0.03, seed=0,
            num_posterior_draws=0, log_likelihood=False, progress_bar=False)
    est = importance_log_likelihood(_target, guide, {"x": x}, num_samples=2000, seed=1)
    # log Z = 0, so the IS estimate checks the whole pipeline: |log p_hat| within 5 MC SEs
    assert abs(est.mean) < 5 * est.mc_se + 0.02
    return est.elbo_mean


def test_flows_beat_the_mean_field_bound_on_a_correlated_target():
    diag = _fitted_elbo(None, 0)
    # the diagonal guide reaches (and cannot pass) its analytic optimum -1.164; the ELBO
    # estimate from 2000 draws has sd ~ sd(log w)/sqrt(2000) ~ 0.035, hence the 0.1 margin
    assert MEAN_FIELD_BEST_ELBO - 0.1 < diag < MEAN_FIELD_BEST_ELBO + 0.1
    # measured (seed 0, 400 steps): diag -1.169, iaf(2) -0.18, planar(4) -0.14; requiring
    # 0.8 / 0.4 nats above the mean-field optimum leaves >= 0.2 nats of slack for optimiser
    # noise, far outside the 0.035 Monte Carlo error
    iaf = _fitted_elbo("iaf", 2)
    planar = _fitted_elbo("planar", 4)
    assert iaf > MEAN_FIELD_BEST_ELBO + 0.8
    assert planar > MEAN_FIELD_BEST_ELBO + 0.4

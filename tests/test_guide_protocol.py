"""The guide protocol: every guide a zoo model defines is a ZooGuide that names its family,
knows whether it is amortised, and gives medians and a report that agree with what it samples."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer.autoguide import AutoNormal
from pyro.poutine.util import site_is_subsample

import zoo
from inference.guide_protocol import ZooGuide, guide_kind, guide_report
from zoo.models.bnn import BayesianNet
from zoo.data.quadrants import mask_inputs
from zoo.models.bnn_guides import compression_summary
from zoo.models.cvae import QuadrantCVAE
from zoo.models.label_cvae import LabelCVAE
from zoo.models.networks import LazyInputDim

#: small settings for registered models whose defaults are big (others are built as registered)
SMALL = {
    "vae": {"latent_dim": 3, "hidden": (8,), "num_flows": 2},
    "dlgm2": {"latent_dim": (4, 2), "hidden": ((8,), (6,)), "num_flows": 2},
    "ppca": {"latent_dim": 2},
    "bnn": {"hidden": (4,)},
    "bnn_classifier": {"hidden": (4,)},
    "lenet300100": {"hidden": (6, 5)},
    "lenet5": {"image_shape": (16, 16)},  # 16x16 inputs keep one 1x1 feature map per channel
    "cvae": {"hidden": (8,), "latent_dim": 2, "side": 4},
    "label_cvae": {"hidden": (8,), "latent_dim": 2, "x_dim": 12, "num_classes": 3},
    "def": {"widths": (3, 2)},
}
N = 7


def _small_kwargs(model: Any) -> dict[str, torch.Tensor]:
    """Model arguments for a few synthetic data points (binary images or regression rows)."""
    gen = torch.Generator().manual_seed(0)
    if isinstance(model, BayesianNet):
        h, w = model.image_shape
        width = h * w if model.architecture == "lenet5" else 5
        x = torch.rand(N, width, generator=gen)
        if model.task == "regression":
            return {"x": x, "y": torch.randn(N, generator=gen)}
        return {"x": x, "y": torch.randint(model.num_classes, (N,), generator=gen)}
    if isinstance(model, QuadrantCVAE):  # masked images and their hidden pixels
        images = torch.rand(N, model.x_dim, generator=gen)
        return {"x": mask_inputs(images, model.quadrants), "y": images[:, model.index]}
    if isinstance(model, LabelCVAE):
        return {"x": torch.rand(N, model.x_dim, generator=gen),
                "c": torch.randint(model.num_classes, (N,), generator=gen)}
    if isinstance(model, LazyInputDim):  # VAE, DLGM, PPCA: flattened images
        return {"x": torch.bernoulli(torch.full((N, 12), 0.5), generator=gen)}
    from zoo.data import load

    return model.model_kwargs(load(zoo.spec(model.name).default_data))


def _own_guides() -> list[tuple[str, str]]:
    return [(spec.name, key) for spec in zoo.list_models()
            for key in zoo.get(spec.name, **SMALL.get(spec.name, {})).guides()]


def test_the_models_that_define_guides_are_all_covered():
    names = {name for name, _ in _own_guides()}
    assert {"vae", "dlgm2", "ppca", "bnn", "bnn_classifier", "lenet300100", "lenet5", "cvae",
            "label_cvae"} <= names


@pytest.mark.parametrize("name, key", _own_guides())
def test_own_guides_follow_the_protocol(name, key):
    model = zoo.get(name, **SMALL.get(name, {}))
    guides = model.guides()
    guide = guides[key]
    assert isinstance(guide, ZooGuide)
    assert guide_kind(guide) == guide.kind
    if key == "model":  # the configured guide, also listed under its own kind
        assert guide.kind in guides and guide.kind == model.guide_name
    else:
        assert guide.kind == key

    kwargs = _small_kwargs(model)
    trace = poutine.trace(guide).get_trace(**kwargs)
    latent = {site_name: site for site_name, site in trace.nodes.items()
              if site["type"] == "sample" and not site_is_subsample(site)
              and not site["infer"].get("is_auxiliary")}
    assert latent
    # amortised <=> every latent is local: sampled inside the data plate, one per point
    in_data_plate = [any(f.name == "data" for f in site["cond_indep_stack"])
                     for site in latent.values()]
    # (or, with free per-point factors beside global ones, some of both: the DEF's guides)
    if guide.amortised:
        assert all(in_data_plate)
    elif guide.local_factors:
        assert any(in_data_plate) and not all(in_data_plate)
    else:
        assert not any(in_data_plate)

    params_before = set(pyro.get_param_store().keys())
    rng_before = torch.get_rng_state()
    median = guide.median(**kwargs)
    assert torch.equal(torch.get_rng_state(), rng_before)  # no random numbers drawn
    assert set(pyro.get_param_store().keys()) == params_before
    assert set(median) == set(latent)
    for site_name, value in median.items():
        assert value.shape == latent[site_name]["value"].shape, site_name
        assert not value.requires_grad
        assert torch.isfinite(value).all()
        assert latent[site_name]["fn"].support.check(value).all(), site_name
    report = guide.report()
    assert isinstance(report, dict) and all(isinstance(v, float) for v in report.values())
    assert guide_report(guide) == report


def test_vae_encoder_median_is_the_encoders_mean():
    vae = zoo.get("vae", latent_dim=3, hidden=(8,), x_dim=12)
    x = torch.bernoulli(torch.full((5, 12), 0.5))  # binary: dynamic binarisation leaves it
    guide = vae.guides()["encoder"]
    median = guide.median(x=x)["z"]
    loc, _ = vae.enc_heads[0](vae.enc_nets[0](x))
    assert torch.allclose(median, loc.detach(), atol=0.0)
    q = poutine.trace(guide).get_trace(x=x).nodes["z"]["fn"]
    assert torch.allclose(median, q.base_dist.loc.detach(), atol=0.0)
    assert guide.amortised and guide_report(guide) == {}


def test_vae_flow_median_with_no_flows_is_the_encoders():
    vae = zoo.get("vae", latent_dim=3, hidden=(8,), x_dim=12, num_flows=0)
    x = torch.rand(5, 12)
    encoder = vae.guides()["encoder"].median(x=x)["z"]
    for kind in ("planar", "radial", "iaf"):
        assert torch.equal(vae.guides()[kind].median(x=x)["z"], encoder)
    with_flows = zoo.get("vae", latent_dim=3, hidden=(8,), x_dim=12, num_flows=2)
    assert not torch.allclose(with_flows.guides()["planar"].median(x=x)["z"],
                              with_flows.guides()["encoder"].median(x=x)["z"])


def test_vae_evaluation_accepts_only_its_own_guides():
    vae = zoo.get("vae", latent_dim=3, hidden=(8,), x_dim=12)
    fitted = vae.fitted_guide(SimpleNamespace(fitted={"guide": vae.guides()["radial"]}))
    assert fitted.kind == "radial" and fitted.vae is vae
    ppca_encoder = zoo.get("ppca", x_dim=12).guides()["encoder"]  # kind "encoder" too
    with pytest.raises(ValueError, match="amortised guides"):
        vae.fitted_guide(SimpleNamespace(fitted={"guide": ppca_encoder}))


def test_ppca_encoder_set_to_the_posterior_has_the_exact_median():
    m = zoo.get("ppca", latent_dim=2, x_dim=6)
    x = torch.randn(9, 6)
    m.fit_closed_form(x)
    m.set_encoder_to_posterior()
    exact = m.exact_guide.median(x=x)["z"]
    assert torch.allclose(m.encoder_guide.median(x=x)["z"], exact, atol=1e-5)
    assert torch.allclose(exact, m.posterior(x).loc.detach())
    assert m.guides()["exact"] is m.exact_guide  # evaluate() recognises its guides by identity


def test_sparse_vd_report_is_the_compression_summary():
    net = zoo.get("lenet300100", hidden=(6, 5))
    guide = net.guides()["sparse_vd"]
    x = torch.rand(4, 10)
    guide(x)
    # make part of the first layer's weights prunable (log alpha > 3)
    store = pyro.get_param_store()
    with torch.no_grad():
        store["sparse_vd.w0.log_sigma2"].unconstrained()[:4].fill_(5.0)
    report = guide.report()
    expected = compression_summary(guide.sparsity_report())
    assert report == expected
    assert 0 < report["sparsity"] < 1 and report["compression"] > 1
    assert guide_report(guide) == expected
    # Gaussian dropout clips alpha at 1 (log alpha <= 0), so it never prunes
    vd = net.guides()["vd"]
    vd(x)
    assert vd.report() == {"sparsity": 0.0, "compression": 1.0}


def test_weight_guide_medians_read_the_fitted_parameters():
    net = BayesianNet(hidden=(3,), dropout_rate=0.6)
    x, y = torch.randn(5, 2), torch.randn(5)
    bbb, mc = net.guides()["bbb"], net.guides()["mc_dropout"]
    with pytest.raises(RuntimeError, match="not been run"):
        bbb.median()
    bbb(x, y)
    mc(x, y)
    store = pyro.get_param_store()
    med = bbb.median()
    assert torch.equal(med["w0"], store["bbb.w0.loc"])
    assert torch.allclose(med["precision"], store["bbb.precision.loc"].exp())
    # weights dropped with probability 0.6 > 1/2: the median weight is 0
    med = mc.median()
    assert torch.equal(med["w1"], torch.zeros(3, 1))
    assert torch.equal(med["w0"], torch.zeros(2, 3))
    assert torch.equal(med["b0"], store["mc_dropout.b0.loc"])
    assert torch.equal(med["precision"], store["mc_dropout.precision.loc"])
    assert not bbb.amortised and guide_report(bbb) == {} and guide_report(mc) == {}


def test_guide_kind_and_report_of_other_guides():
    def model(y=None):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", 3, dim=-1):
            pyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    def my_guide(y=None):
        pyro.sample("mu", dist.Normal(pyro.param("m", torch.tensor(0.0)), 1.0))

    auto = AutoNormal(model)
    assert not isinstance(auto, ZooGuide)
    assert guide_kind(auto) == "AutoNormal"
    assert guide_report(auto) == {}
    assert guide_kind(my_guide) == "my_guide" and guide_report(my_guide) == {}

"""forensics.report.figures: figures that read at a glance, and the takeaway sentence each one comes with."""
from __future__ import annotations

import re

import numpy as np
import pytest

from forensics.audit.verdict import Verdict, format_p
from forensics.report.figures import output_difference_figure, projection_figure
from forensics.report.gallery import GALLERY_METRICS, GALLERY_ORDERS, gallery, gallery_takeaway
from forensics.report.style import FIGURE_NAMES, VERDICT_COLORS, default_pair
from forensics.report.takeaways import takeaway
from forensics.report.verdict_figures import _evidence_axis, membership_figure, p_ticks, pvalue_figure

P_TEXT = re.compile(r"^(1|0\.1|0\.01|0\.001|1e-\d+)$")


def fake_verdict(name: str, p: float, alpha: float = 0.01) -> Verdict:
    """A membership verdict with a given p-value (the other protocols did not run)."""
    strata = [{"stratum": k, "member_mean": 1.0 - (0.1 * k if p < alpha else 0.0), "control_mean": 1.0}
              for k in range(5)]
    evidence = {"membership": {"p_value": p, "members": 100, "controls": 100, "score": "loss", "strata": strata}}
    return Verdict(name, "membership", p, None, p < alpha, alpha, 200, 0, evidence)


def one_sentence(text: str) -> bool:
    return text.endswith(".") and not re.search(r"[.:;]\s+[A-Z]", text[:-1])


# -- fast: the p-value axis ------------------------------------------------------------------------------------


def test_pvalue_ticks_are_monotone_readable_p_values():
    ps = [1e-170, 3e-8, 0.004, 0.2, 1.0]
    vs = [fake_verdict(f"s{i}", p) for i, p in enumerate(ps)]
    fig = pvalue_figure(vs, 0.01)
    ax = fig.layout.xaxis
    vals, texts = list(ax.tickvals), list(ax.ticktext)
    assert np.all(np.diff(vals) > 0) and vals[0] == 0  # monotone, p = 1 at the origin
    assert all(P_TEXT.match(t) for t in texts), texts
    tick_p = [float(t) for t in texts]
    assert np.all(np.diff(tick_p) < 0) and tick_p[-1] <= 1e-170  # the axis covers the smallest p
    assert ax.type in (None, "linear") and fig.layout.yaxis.type != "log"  # no garbled log ticks
    bars = {name: (x, text) for tr in fig.data for name, x, text in zip(tr.y, tr.x, tr.text, strict=True)}
    assert bars["s0"][1] == "p = 1.0e-170" and bars["s4"][1] == "p = 1.000"  # both drawn, with their p-value
    assert bars["s4"][0] == 0 < bars["s3"][0] < bars["s2"][0] < bars["s1"][0] < bars["s0"][0] <= ax.range[1]
    # coloured by verdict, with a legend that says what the colours mean
    legend = {tr.name: tr.marker.color for tr in fig.data}
    assert legend == {"evidence of derivation (p < 0.01)": VERDICT_COLORS[True],
                      "no evidence (p ≥ 0.01)": VERDICT_COLORS[False]}
    assert list(fig.layout.yaxis.categoryarray) == [v.suspect for v in vs]  # suspects on the y axis, in order
    assert any("alpha = 0.01" in (a.text or "") for a in fig.layout.annotations)


def test_p_ticks_stop_at_the_data():
    _, texts = p_ticks(0.2)
    assert texts == ["1", "0.1"]
    _, texts = p_ticks(1e-12)
    assert texts[-1] == "1e-20" and "1e-10" in texts
    assert _evidence_axis(0.0) == _evidence_axis(1e-300)  # p = 0 is drawn, not an error


def test_pvalue_takeaway_names_the_flagged():
    vs = [fake_verdict("copy", 1e-40), fake_verdict("twin", 1e-5), fake_verdict("bystander", 0.3)]
    t = takeaway("pvalue", None, vs, 0.01)  # the p-value takeaway needs no audit
    assert "copy (p = 1.0e-40)" in t and "twin (p = 1.0e-05)" in t and "bystander" not in t and one_sentence(t)
    assert "None of the 3 suspects" in takeaway("pvalue", None, vs, 1e-60)


def test_default_pair_is_smallest_and_largest_p():
    vs = [fake_verdict("a", 0.5), fake_verdict("b", 1e-9), fake_verdict("c", 0.9), fake_verdict("d", 0.01)]
    for v in vs:
        v.per_sample["ds_logits"] = [[0.0]]
    vs[2].per_sample.clear()  # answered with labels only: nothing to compare on D_s
    assert default_pair(vs) == ["b", "a"]
    assert default_pair(vs[:1]) == ["a"] and default_pair([]) == []


# -- on the reduced demo ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(quick_demo):
    vs = [r.verdict for r in quick_demo.suspects]
    return quick_demo.audit, vs, {r.verdict.suspect: r.kind for r in quick_demo.suspects}


def panels(fig) -> set[str]:
    return {tr.xaxis for tr in fig.data}


@pytest.mark.slow
def test_pvalue_figure_on_the_demo(demo):
    a, vs, kinds = demo
    fig = pvalue_figure(vs, a.config.alpha, kinds=kinds)
    texts = [t for tr in fig.data for t in tr.text]
    assert all(f"p = {format_p(v.p_value)}" in texts for v in vs)
    assert fig.layout.title.text.startswith("Evidence per suspect")


@pytest.mark.slow
def test_output_differences_one_panel_per_class_and_only_the_chosen(demo):
    a, vs, kinds = demo
    k = len(a.private.classes)
    pair = default_pair(vs)
    by_p = sorted(vs, key=lambda v: v.p_value)
    assert pair == [by_p[0].suspect, by_p[-1].suspect]
    chosen = [v for v in vs if v.suspect in pair]
    fig = output_difference_figure(a, chosen, kinds=kinds)
    assert len(panels(fig)) == k == 10
    titles = {ann.text for ann in fig.layout.annotations}
    assert {c for c in a.private.classes if c != a.private.classes[a.config.target_class]} <= titles
    shown = {tr.legendgroup for tr in fig.data}
    assert shown == {"victim", "benign shadow", *pair}
    matches = {fig.layout[f"yaxis{i if i > 1 else ''}"].matches for i in range(1, k + 1)}
    assert len(matches - {None}) == 1  # one shared y axis
    # given every suspect (the HTML report), the figure keeps to the default pair
    everyone = output_difference_figure(a, vs)
    assert {tr.legendgroup for tr in everyone.data} == shown and "smallest and the largest" in \
        everyone.layout.title.subtitle.text
    other = [v for v in vs if v.suspect not in pair][:2]
    assert {tr.legendgroup for tr in output_difference_figure(a, other).data} == \
        {"victim", "benign shadow", *(v.suspect for v in other)}


@pytest.mark.slow
def test_projection_one_panel_per_chosen_suspect(demo):
    a, vs, kinds = demo
    chosen = [v for v in vs if v.suspect in default_pair(vs)]
    fig = projection_figure(a, chosen, kinds=kinds)
    assert "principal components" in fig.layout.title.text
    assert len(panels(fig)) == 2
    suspects = {tr.name for tr in fig.data if tr.name in {v.suspect for v in vs}}
    assert suspects == {v.suspect for v in chosen}
    assert "[" in fig.layout.xaxis.title.text and "[" in fig.layout.yaxis.title.text
    assert len(panels(projection_figure(a, ()))) == 1  # the references alone


@pytest.mark.slow
def test_membership_one_panel_per_suspect_coloured_by_verdict(demo):
    a, vs, kinds = demo
    fig = membership_figure(vs, kinds=kinds)
    assert len(panels(fig)) == len(vs)
    main = [tr for tr in fig.data if tr.mode == "lines+markers"]
    assert [tr.name for tr in main] == [v.suspect for v in vs]
    for tr, v in zip(main, vs, strict=True):
        flagged = v.evidence["membership"]["p_value"] < a.config.alpha
        assert tr.line.color == VERDICT_COLORS[flagged]
    assert "[nats]" in fig.layout.yaxis.title.text


@pytest.mark.slow
def test_takeaways_name_the_stolen_suspects(demo):
    a, vs, _ = demo
    stolen = [v.suspect for v in vs if v.stolen]
    innocent = [v.suspect for v in vs if not v.stolen]
    assert stolen and innocent  # the reduced demo: the direct and the fine-tuned copy are caught
    for name in ("pvalue", "membership"):
        t = takeaway(name, a, vs)
        assert all(s in t for s in stolen) and not any(s in t for s in innocent), t
    for name in FIGURE_NAMES:
        t = takeaway(name, a, vs)
        assert one_sentence(t) and len(t) < 400, (name, t)
    pair = [v for v in vs if v.suspect in default_pair(vs)]
    for name in ("output_difference", "projection", "meta_scores"):
        t = takeaway(name, a, pair)
        assert all(v.suspect in t for v in pair) and one_sentence(t), t
    with pytest.raises(ValueError, match="unknown figure"):
        takeaway("nope", a, vs)


@pytest.mark.slow
def test_gallery_values_vary_per_image(demo):
    a, vs, _ = demo
    for v in vs:
        items = gallery(a, v, n=len(a.loss_order.ds_rows))
        values = [it.value for it in items]
        assert len(set(values)) > len(values) // 2, v.suspect  # not the same score on every image
        assert values == sorted(values, reverse=True)  # highest loss first
        assert all(it.label in it.caption and "victim" in it.caption for it in items)
        p = gallery(a, v, GALLERY_METRICS[1], GALLERY_ORDERS[1], n=5)
        assert [it.value for it in p] == sorted(it.value for it in p)
        assert all(re.search(r"P\(stolen\) \d\.\d{3}$", it.caption) for it in p)
    rows = [it.row for it in gallery(a, vs[0], order=GALLERY_ORDERS[2], n=8)]
    assert rows == [int(r) for r in a.loss_order.ds_rows[:8]]
    t = gallery_takeaway(a, vs[0], vs)
    assert vs[0].suspect in t and one_sentence(t)

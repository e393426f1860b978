"""evaluation/noise.py against simulations with a known answer (interval coverage, false-positive
rate), against scipy run here on the same numbers, and against independent computations written
here (the nested ANOVA by correction terms, the two-way residuals, Dunnett's critical value by
quadrature, a brute-force seed plan). Seeded; a few tens of seconds on two cores."""
import dataclasses
import functools
import inspect
import json
import math
import warnings

import numpy as np
import pytest
from scipy import optimize, special, stats

from evaluation.noise import (Comparison, Obs, PairDifference, SeedPlan, all_pairs, backbone_means, comparisons,
                              dunnett_critical_value, finetune_seed_effect, record, seed_plan, variance_components)

SIGMA_P, SIGMA_F = 1.0, 1.5


def study(rng, R, P, F, sigma_p=SIGMA_P, sigma_f=SIGMA_F, recipe_means=None, seed_effects=None):
    """A balanced nested study: recipe mean + backbone N(0, sigma_p) + fine-tune N(0, sigma_f)
    (+ a common effect per fine-tune seed, the same for every backbone)."""
    mus = rng.normal(70, 3, R) if recipe_means is None else recipe_means
    out = []
    for r in range(R):
        for p in range(P):
            b = rng.normal(0, sigma_p)
            for f in range(F):
                common = 0.0 if seed_effects is None else seed_effects[f]
                out.append(Obs(f"r{r}", 100 + p, 7 + f, float(mus[r] + b + common + rng.normal(0, sigma_f))))
    return out


def json_ready(stat):
    for v in dataclasses.asdict(stat).values():  # plain Python numbers, no numpy scalars
        assert type(v) in (int, float, str, bool, type(None)), (type(v), v)
    text = json.dumps(record(stat), allow_nan=False)  # no NaN
    assert json.loads(text)["words"] == stat.words
    return text


# ---------------------------------------------------------------- variance components

def nested_anova_by_totals(values):
    """values[r][p][f] (balanced): the nested ANOVA by correction terms, SS from the totals."""
    y = np.asarray(values, dtype=float)
    R, P, F = y.shape
    N = y.size
    ct = y.sum() ** 2 / N
    ss_cells = (y.sum(axis=2) ** 2).sum() / F - ct
    ss_recipes = (y.sum(axis=(1, 2)) ** 2).sum() / (P * F) - ct
    ss_total = (y ** 2).sum() - ct
    ms_p = (ss_cells - ss_recipes) / (R * (P - 1))
    ms_f = (ss_total - ss_cells) / (R * P * (F - 1))
    return ms_p, ms_f


def test_variance_components_on_a_table_by_hand():
    # recipe A: backbone means 2 and 6, recipe B: 10 and 13; within-backbone SS 2 + 2 + 0 + 2 = 6 on 4 df
    table = {"A": {0: [1, 3], 1: [5, 7]}, "B": {0: [10, 10], 1: [12, 14]}}
    obs = [Obs(r, s, f, v) for r, seeds in table.items() for s, vals in seeds.items() for f, v in enumerate(vals)]
    vc = variance_components(obs, "map")
    assert vc.balanced and not vc.approximate and vc.reason is None
    assert (vc.recipes, vc.pretrain_seeds, vc.finetune_seeds, vc.df_f, vc.df_p) == (2, 2, 2, 4, 2)
    assert vc.ms_f == pytest.approx(1.5)                       # 6 / 4
    assert vc.ms_p == pytest.approx(12.5)                      # 2 x (4 + 4 + 2.25 + 2.25) / 2
    assert vc.sd_f == pytest.approx(math.sqrt(1.5))
    assert vc.sd_p == pytest.approx(math.sqrt((12.5 - 1.5) / 2))
    ms_p, ms_f = nested_anova_by_totals([list(seeds.values()) for seeds in table.values()])
    assert (vc.ms_p, vc.ms_f) == pytest.approx((ms_p, ms_f), rel=1e-12)
    # exact chi-square interval of sigma_f, written out
    lo = math.sqrt(4 * 1.5 / stats.chi2.ppf(0.975, 4))
    hi = math.sqrt(4 * 1.5 / stats.chi2.ppf(0.025, 4))
    assert (vc.sd_f_low, vc.sd_f_high) == pytest.approx((lo, hi), rel=1e-12)
    assert vc.sd_p_low <= vc.sd_p <= vc.sd_p_high
    assert "fine-tune sd 1.22 [" in vc.words and "(chi-square, 4 df); pretraining sd 2.35 [" in vc.words
    json_ready(vc)


def test_variance_components_on_a_random_balanced_table():
    rng = np.random.default_rng(3)
    obs = study(rng, 3, 4, 5)
    y = np.array([o.value for o in obs]).reshape(3, 4, 5)
    ms_p, ms_f = nested_anova_by_totals(y)
    vc = variance_components(obs, "miou")
    assert (vc.ms_p, vc.ms_f) == pytest.approx((ms_p, ms_f), rel=1e-10)
    assert vc.sd_p == pytest.approx(math.sqrt(max(0.0, (ms_p - ms_f) / 5)), rel=1e-10)


def test_mls_interval_reduces_to_the_exact_one_without_finetune_noise():
    """With MS_f = 0 the MLS bounds are c1 S1^2 (1 - G1) and c1 S1^2 (1 + H1): the exact chi-square
    interval of sigma_p^2 = MS_p / F on df_p (Burdick & Graybill 1992: the MLS interval is exact
    in that limit), so G1 in (0, 1) and H1 > 0 come from the right quantiles."""
    rng = np.random.default_rng(5)
    obs = [Obs(f"r{r}", s, f, float(v)) for r in range(3) for s, v in enumerate(rng.normal(0, 1, 4)) for f in range(3)]
    vc = variance_components(obs, "map")
    assert vc.ms_f == pytest.approx(0, abs=1e-20) and vc.df_p == 9
    lo = math.sqrt(9 * vc.ms_p / 3 / stats.chi2.ppf(0.975, 9))
    hi = math.sqrt(9 * vc.ms_p / 3 / stats.chi2.ppf(0.025, 9))
    assert (vc.sd_p_low, vc.sd_p_high) == pytest.approx((lo, hi), rel=1e-9)


@pytest.mark.parametrize("R, P, F", [(4, 3, 3), (4, 2, 2)])
def test_interval_coverage_on_simulated_studies(R, P, F):
    # 1500 studies each (SE of a coverage ~0.6%), sigma_p = 1, sigma_f = 1.5. Measured with this
    # seed: fine-tune 94.5% at (4, 3, 3) and 95.6% at (4, 2, 2); pretraining (MLS) 94.9% and 94.5%.
    # The MLS interval holds even at P = 2, F = 2 (4 and 4 df): 96.2% with another seed (2000 studies).
    rng = np.random.default_rng(2024)
    n = 1500
    cover_f = cover_p = 0
    for _ in range(n):
        vc = variance_components(study(rng, R, P, F), "map")
        cover_f += vc.sd_f_low <= SIGMA_F <= vc.sd_f_high
        cover_p += vc.sd_p_low <= SIGMA_P <= vc.sd_p_high
    assert 0.93 <= cover_f / n <= 0.97, cover_f / n
    assert 0.93 <= cover_p / n <= 0.97, cover_p / n


def test_unbalanced_table_is_estimated_and_marked_approximate():
    rng = np.random.default_rng(9)
    obs = study(rng, 3, 3, 3)
    obs = [o for o in obs if not (o.recipe == "r0" and o.seed == 100 and o.ft_seed == 9)]  # a backbone with 2
    obs = [o for o in obs if not (o.recipe == "r2" and o.seed == 102)]                        # a recipe with 2
    vc = variance_components(obs, "map")
    assert not vc.balanced and vc.approximate and vc.reason is None
    assert "approximate: unbalanced design" in vc.words
    # independently: pooled within-backbone variance; harmonic-mean F x pooled variance of backbone means
    cells = {}
    for o in obs:
        cells.setdefault(o.recipe, {}).setdefault(o.seed, []).append(o.value)
    within = [np.var(v, ddof=1) * (len(v) - 1) for seeds in cells.values() for v in seeds.values()]
    df_f = sum(len(v) - 1 for seeds in cells.values() for v in seeds.values())
    sizes = [len(v) for seeds in cells.values() for v in seeds.values()]
    f_h = len(sizes) / sum(1 / n for n in sizes)
    between = [np.var([np.mean(v) for v in seeds.values()], ddof=1) * (len(seeds) - 1) for seeds in cells.values()]
    df_p = sum(len(seeds) - 1 for seeds in cells.values())
    assert (vc.df_f, vc.df_p) == (df_f, df_p) == (15, 5)  # 18 - 1 (a fine-tune) - 2 (a backbone); 6 - 1
    assert vc.ms_f == pytest.approx(sum(within) / df_f)
    assert vc.ms_p == pytest.approx(f_h * sum(between) / df_p)
    assert vc.f_harmonic == pytest.approx(f_h)


def test_no_replicate_finetunes_or_backbones_give_a_reason():
    rng = np.random.default_rng(1)
    one_ft = variance_components(study(rng, 3, 3, 1), "map")
    assert one_ft.reason is not None and "fine-tuned once" in one_ft.reason
    assert one_ft.sd_f is None and one_ft.sd_p is None and "cannot be split" in one_ft.words
    one_bb = variance_components(study(rng, 3, 1, 3), "map")
    assert one_bb.reason is not None and "one backbone" in one_bb.reason
    assert variance_components([], "map").reason == "no runs"
    for vc in (one_ft, one_bb):
        json_ready(vc)
    effect = finetune_seed_effect(study(rng, 3, 3, 1), "map")
    assert effect.reason is not None and effect.pvalue is None
    plan = seed_plan(one_ft, recipes=4, cost_pretrain=10, cost_finetune=1)
    assert plan.reason is not None and plan.pretrain_seeds is None and "not estimated" in plan.words
    json_ready(plan)
    with pytest.raises(ValueError, match="duplicate"):
        variance_components([Obs("a", 0, 0, 1.0), Obs("a", 0, 0, 2.0)], "map")


# ---------------------------------------------------------------- a common fine-tune seed effect

def two_way_by_residuals(y):
    """F of the seed columns in a rows x columns table without replication, by the classic
    residuals y - row mean - column mean + grand mean."""
    B, F = y.shape
    resid = y - y.mean(1, keepdims=True) - y.mean(0, keepdims=True) + y.mean()
    ms_seed = B * ((y.mean(0) - y.mean()) ** 2).sum() / (F - 1)
    ms_res = (resid ** 2).sum() / ((B - 1) * (F - 1))
    return ms_seed / ms_res


def test_finetune_seed_effect_is_found_when_large_and_matches_the_two_way_anova():
    rng = np.random.default_rng(11)
    obs = study(rng, 4, 3, 4, seed_effects=[-2.0, 0.0, 2.0, 1.0])
    e = finetune_seed_effect(obs, "map")
    assert e.found and e.pvalue < 0.001 and (e.backbones, e.finetune_seeds, e.df1, e.df2) == (12, 4, 3, 33)
    y = np.array([o.value for o in obs]).reshape(12, 4)
    assert e.statistic == pytest.approx(two_way_by_residuals(y), rel=1e-10)
    assert "moves every backbone alike" in e.words
    json_ready(e)
    # a backbone missing a fine-tune seed is left out, and said so
    e2 = finetune_seed_effect(obs[:-1], "map")
    assert (e2.backbones, e2.left_out) == (11, 1) and "left out" in e2.words


def test_finetune_seed_effect_false_positive_rate():
    # 600 studies without a common seed effect (recipe and backbone effects present). Measured: 5.0%.
    rng = np.random.default_rng(12)
    found = [finetune_seed_effect(study(rng, 4, 3, 3), "map").found for _ in range(600)]
    rate = float(np.mean(found))
    assert 0.02 <= rate <= 0.09, rate


# ---------------------------------------------------------------- comparisons and all pairs

def test_comparisons_equal_scipy_dunnett_on_the_backbone_means():
    rng = np.random.default_rng(21)
    obs = study(rng, 4, 3, 2, recipe_means=[70, 71, 72.5, 69])
    means = backbone_means(obs)
    assert list(means) == ["r0", "r1", "r2", "r3"] and all(len(v) == 3 for v in means.values())
    assert means["r1"][0] == pytest.approx(np.mean([o.value for o in obs if o.recipe == "r1" and o.seed == 100]))
    out = comparisons(means, "r1", "map", seed=7)
    res = stats.dunnett(*[means[r] for r in ("r0", "r2", "r3")], control=means["r1"], rng=np.random.default_rng(7))
    ci = res.confidence_interval(0.95)
    assert [c.recipe for c in out] == ["r0", "r2", "r3"]
    for i, c in enumerate(out):
        assert (c.low, c.high, c.pvalue) == (ci.low[i], ci.high[i], res.pvalue[i])  # the same bytes
        assert c.estimate == pytest.approx(np.mean(means[c.recipe]) - np.mean(means["r1"]))
        assert (c.df, c.n, c.n_reference) == (8, 3, 3)
        assert c.method == "Dunnett (scipy.stats.dunnett), pooled over 4 recipes"
        assert c.beyond_noise == (not c.low <= 0 <= c.high)
        json_ready(c)
    assert comparisons(means, "r1", "map", seed=7) == out  # seeded: the same input gives the same numbers


def test_dunnett_with_two_recipes_is_the_pooled_t_interval():
    """One comparison: Dunnett's test is the pooled two-sample t test. scipy's dunnett finds its
    critical value by minimising a randomised-QMC objective (tol 1e-3), so its p-value matches
    ttest_ind to ~1e-3 but its interval bounds only to ~2% of the half-width (measured over 200
    random pairs: median 0.1%, max 2.0%); here 1e-3 on the p-value, 2.5% on the bounds."""
    rng = np.random.default_rng(31)
    for trial in range(5):
        a, b = list(rng.normal(70, 1, 4)), list(rng.normal(71, 1, 3 + trial % 2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # scipy: "did not converge to the desired level"
            (c,) = comparisons({"a": a, "b": b}, "a", "map", seed=trial)
        t = stats.ttest_ind(b, a, equal_var=True)
        ci = t.confidence_interval(0.95)
        half = (ci.high - ci.low) / 2
        assert c.estimate == pytest.approx(np.mean(b) - np.mean(a), abs=1e-12)
        assert c.df == len(a) + len(b) - 2 == t.df
        assert c.pvalue == pytest.approx(t.pvalue, abs=1e-3)
        assert abs(c.low - ci.low) <= 0.025 * half and abs(c.high - ci.high) <= 0.025 * half


def test_dunnett_intervals_cover_all_true_differences_at_once():
    # 250 studies of 3 recipes x 3 backbones (scipy's dunnett takes ~50 ms each). Measured: 95.6%.
    rng = np.random.default_rng(41)
    mu = np.array([70.0, 70.5, 71.5])
    n, covered = 250, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for s in range(n):
            means = {f"r{i}": list(m + rng.normal(0, 1.2, 3)) for i, m in enumerate(mu)}
            out = comparisons(means, "r0", "map", seed=s)
            covered += all(c.low <= mu[i + 1] - mu[0] <= c.high for i, c in enumerate(out))
    assert 0.93 <= covered / n <= 0.98, covered / n


def test_comparisons_leave_out_recipes_without_backbones_and_say_why():
    out = comparisons({"ref": [70.0, 71.0], "a": [72.0, 72.5], "empty": [], "c": [69.0, 70.0]}, "ref", "map")
    by = {c.recipe: c for c in out}
    assert by["empty"].reason == "no backbones" and by["empty"].low is None and by["empty"].beyond_noise is None
    assert by["a"].reason is None and by["a"].method.endswith("pooled over 3 recipes") and by["a"].df == 3
    single = comparisons({"ref": [70.0], "a": [71.0]}, "ref", "map")
    assert single[0].reason is not None and "pooled df" in single[0].reason and single[0].estimate == 1.0
    assert "cannot be compared" in single[0].words
    for c in out + single:
        json_ready(c)
    with pytest.raises(ValueError, match="unknown reference"):
        comparisons({"a": [1.0]}, "b", "map")


def test_all_pairs_equal_scipy_tukey_hsd():
    rng = np.random.default_rng(51)
    means = {"c": list(rng.normal(72, 1, 3)), "a": list(rng.normal(70, 1, 4)), "b": list(rng.normal(71, 1, 3))}
    out = all_pairs(means, "map")
    res = stats.tukey_hsd(means["a"], means["b"], means["c"])
    ci = res.confidence_interval(0.95)
    assert [(p.a, p.b) for p in out] == [("a", "b"), ("a", "c"), ("b", "c")]
    for p in out:
        i, j = "abc".index(p.a), "abc".index(p.b)
        assert p.estimate == pytest.approx(res.statistic[i, j])
        assert (p.low, p.high, p.pvalue) == pytest.approx((ci.low[i, j], ci.high[i, j], res.pvalue[i, j]), rel=1e-12)
        assert p.df == 7 and p.method == "Tukey HSD (scipy.stats.tukey_hsd)"
        json_ready(p)
    assert all_pairs({"a": [1.0], "b": [2.0]}, "map")[0].reason is not None


# ---------------------------------------------------------------- seed planning

@functools.lru_cache
def dunnett_critical_by_quadrature(m, df, alpha):
    """Two-sided Dunnett critical value for m comparisons, correlation 0.5, by quadrature:
    X_i = (Z_0 + Z_i) / sqrt 2, so given Z_0 = z and S = s, P(|X_i| <= c s) for all i is
    (Phi(sqrt2 c s - z) - Phi(-sqrt2 c s - z))^m; z by Gauss-Hermite, S = sqrt(2 V / df) with
    V ~ Gamma(df / 2) by generalised Gauss-Laguerre."""
    x, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / w.sum()
    v, u = special.roots_genlaguerre(100, df / 2 - 1)
    u = u / u.sum()
    s = np.sqrt(2 * v / df)[:, None]

    def covered(c):
        inner = (stats.norm.cdf(math.sqrt(2) * c * s - x) - stats.norm.cdf(-math.sqrt(2) * c * s - x)) ** m
        return float(u @ (inner @ w)) - (1 - alpha)

    return optimize.brentq(covered, 1.0, 10.0, xtol=1e-9)


@pytest.mark.parametrize("m, df", [(1, 6), (2, 8), (3, 12), (5, 20)])
def test_dunnett_critical_value_against_quadrature(m, df):
    assert dunnett_critical_value(m, df, 0.05) == pytest.approx(dunnett_critical_by_quadrature(m, df, 0.05), abs=2e-3)
    if m == 1:
        assert dunnett_critical_value(1, df, 0.05) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-12)
        assert dunnett_critical_by_quadrature(1, df, 0.05) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-5)


def brute_force_plan(R, sp, sf, cp, cf, effect, power, alpha, maxP, maxF):
    """Every (P, F) on the grid; the cheapest with enough power, ties to the fewer pretraining seeds."""
    best = None
    for P in range(2, maxP + 1):
        df = R * (P - 1)
        crit = dunnett_critical_by_quadrature(R - 1, df, alpha)
        for F in range(1, maxF + 1):
            delta = effect / math.sqrt(2 * (sp ** 2 / P + sf ** 2 / (P * F)))
            pw = 1 - stats.nct.cdf(crit, df, delta) + stats.nct.cdf(-crit, df, delta)
            cost = R * P * (cp + F * cf)
            if pw >= power and (best is None or (cost, P) < (best[0], best[1])):
                best = (cost, P, F, pw)
    return best


def noise_components(seed=61):
    return variance_components(study(np.random.default_rng(seed), 4, 3, 3), "map")


def test_seed_plan_is_the_brute_force_optimum_and_shrinks_with_a_bigger_effect():
    vc = noise_components()
    plans = {}
    for effect in (1.5, 3.0):
        plan = seed_plan(vc, recipes=4, cost_pretrain=20.0, cost_finetune=1.5, effect=effect,
                         max_pretrain_seeds=12, max_finetune_seeds=12)
        cost, P, F, pw = brute_force_plan(4, vc.sd_p, vc.sd_f, 20.0, 1.5, effect, 0.8, 0.05, 12, 12)
        assert (plan.pretrain_seeds, plan.finetune_seeds) == (P, F)
        assert plan.cost == pytest.approx(cost) and plan.achieved_power == pytest.approx(pw, abs=1e-3)
        assert plan.reason is None and plan.achieved_power >= 0.8 and plan.df == 4 * (P - 1)
        plans[effect] = plan
        json_ready(plan)
    small, big = plans[1.5], plans[3.0]
    assert big.cost < small.cost
    assert big.pretrain_seeds * big.finetune_seeds <= small.pretrain_seeds * small.finetune_seeds
    lines = "\n".join(small.lines)
    assert "Var(difference) = 2 (sigma_p^2 / P + sigma_f^2 / (P F))" in lines and "critical value" in lines
    assert f"{small.cost:g} device-hours" in lines and "the stated effect" in lines
    f_star = math.sqrt(20.0 / 1.5 * vc.sd_f ** 2 / vc.sd_p ** 2)
    assert small.f_star == pytest.approx(min(f_star, 12)) and small.f_star_capped == (f_star > 12)


def test_seed_plan_never_uses_the_observed_difference():
    """The plan depends on the noise and the stated effect only: two studies with the same noise
    draws but recipe means 0.1 or 5 points apart give the same components and the same plan."""
    a = study(np.random.default_rng(71), 4, 3, 3, recipe_means=[70, 70.1, 70.2, 70.3])
    b = study(np.random.default_rng(71), 4, 3, 3, recipe_means=[70, 75, 80, 85])
    va, vb = variance_components(a, "map"), variance_components(b, "map")
    assert va.sd_p == pytest.approx(vb.sd_p, rel=1e-9) and va.sd_f == pytest.approx(vb.sd_f, rel=1e-9)
    pa = seed_plan(va, recipes=4, cost_pretrain=20, cost_finetune=1.5, effect=2.0, max_pretrain_seeds=10,
                   max_finetune_seeds=10)
    pb = seed_plan(vb, recipes=4, cost_pretrain=20, cost_finetune=1.5, effect=2.0, max_pretrain_seeds=10,
                   max_finetune_seeds=10)
    assert (pa.pretrain_seeds, pa.finetune_seeds, pa.effect) == (pb.pretrain_seeds, pb.finetune_seeds, 2.0)
    assert set(inspect.signature(seed_plan).parameters) == {
        "vc", "recipes", "cost_pretrain", "cost_finetune", "cost_trial", "trials", "effect", "power", "alpha",
        "max_pretrain_seeds", "max_finetune_seeds"}


def test_seed_plan_edge_cases():
    vc = noise_components()
    far = seed_plan(vc, recipes=4, cost_pretrain=20, cost_finetune=1.5, effect=0.05, max_pretrain_seeds=4,
                    max_finetune_seeds=4)
    assert far.reason is not None and "not reachable" in far.reason and far.achieved_power < 0.8
    assert far.pretrain_seeds == 4 and "not reachable" in far.words
    json_ready(far)
    no_p = dataclasses.replace(vc, sd_p=0.0)
    plan = seed_plan(no_p, recipes=3, cost_pretrain=20, cost_finetune=1.5, trials=2, cost_trial=3.0, effect=2.0,
                     max_pretrain_seeds=8, max_finetune_seeds=8)
    assert plan.f_star == 8 and plan.f_star_capped and "capped" in "\n".join(plan.lines)
    assert plan.cost_per_backbone == pytest.approx(20 + 2 * 3.0 + plan.finetune_seeds * 1.5)
    assert plan.cost == pytest.approx(3 * plan.pretrain_seeds * plan.cost_per_backbone)
    assert seed_plan(vc, recipes=1, cost_pretrain=1, cost_finetune=1).reason is not None
    with pytest.raises(ValueError):
        seed_plan(vc, recipes=4, cost_pretrain=1, cost_finetune=1, effect=0.0)
    assert isinstance(plan, SeedPlan) and Comparison and PairDifference

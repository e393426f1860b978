"""evaluation/stats.py against textbook formulas written here with numpy (not the scipy calls
the module makes), plus a coverage simulation and constructed tables with a known answer."""
import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from evaluation.stats import (Run, _kendall, _pearson, _spearman, correlations, effects, holm,
                              improvement_probabilities, rank_inversions, summarize, summary_table,
                              trick_effects)
from trickbench.tricks import factor_members

T975_2 = 4.302653  # tabulated t(0.975, df=2)


def table(means: dict[str, dict[str, float]], noise: dict[str, float] | float = 0.0, seeds=(0, 1, 2),
          rng_seed: int = 0) -> list[Run]:
    """recipe -> metric -> true mean; each seed adds N(0, noise) per metric."""
    rng = np.random.default_rng(rng_seed)
    runs = []
    for recipe, ms in means.items():
        for s in seeds:
            runs.append(Run(recipe, s, {m: v + rng.normal(0, noise if isinstance(noise, float) else noise[m])
                                        for m, v in ms.items()}))
    return runs


def recipe_means(runs, metric):
    out = {}
    for r in runs:
        out.setdefault(r.recipe, []).append(r.metrics[metric])
    return np.array([np.mean(v) for v in out.values()])


def pearson_by_hand(x, y):
    cov = ((x - x.mean()) * (y - y.mean())).sum() / (len(x) - 1)
    return cov / (x.std(ddof=1) * y.std(ddof=1))


def ranks(v):  # no ties
    r = np.empty(len(v))
    r[np.argsort(v)] = np.arange(1, len(v) + 1)
    return r


def kendall_by_hand(x, y):
    """tau-b = (C - D) / sqrt((C + D + Tx-only... ) ...) by counting the pairs."""
    c = d = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        if sx == 0 and sy == 0:
            continue
        if sx == 0:
            tx += 1
        elif sy == 0:
            ty += 1
        elif sx == sy:
            c += 1
        else:
            d += 1
    return (c - d) / math.sqrt((c + d + tx) * (c + d + ty))


def pick(results, **fields):
    found = [r for r in results if all(getattr(r, k) == v for k, v in fields.items())]
    assert len(found) == 1, (fields, found)
    return found[0]


# ------------------------------------------------------------------ summaries


def test_summarize_mean_std_and_t_interval():
    v = [75.1, 75.9, 74.8]
    s = summarize(v)
    mean = sum(v) / 3
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / 2)
    half = T975_2 * sd / math.sqrt(3)
    assert s.n == 3 and s.mean == pytest.approx(mean) and s.std == pytest.approx(sd)
    assert (s.ci_low, s.ci_high) == (pytest.approx(mean - half, abs=1e-5), pytest.approx(mean + half, abs=1e-5))
    assert "3 seeds" in s.words


def test_summarize_one_value_has_no_spread():
    s = summarize([70.0])
    assert (s.n, s.mean, s.std, s.ci_low, s.ci_high) == (1, 70.0, None, None, None)
    assert "cannot be estimated" in s.words
    with pytest.raises(ValueError):
        summarize([])


def test_seeds_that_agree_give_no_interval_rather_than_a_point_or_nan():
    # A backbone at chance gives 10.0 top-1 at every seed, and top-1 on 1,000 images moves in
    # steps of 0.1, so 2-3 seeds often agree exactly. scipy's t interval is then NaN; a point
    # interval [d, d] would call any difference real. Neither: no interval, and the words say why.
    s = summarize([10.0, 10.0])
    assert (s.std, s.ci_low, s.ci_high) == (0.0, None, None) and "no spread measured" in s.words
    runs = [Run("base", k, {"top1": 10.0}) for k in (0, 1)] + [Run("new", k, {"top1": 12.5}) for k in (0, 1)]
    (e,) = effects(runs, "base", ["top1"])
    assert (e.method, e.diff, e.ci_low, e.ci_high, e.within_noise) == ("paired", 2.5, None, None, None)
    assert "beyond" not in e.words and "2 paired differences are all equal" in e.words
    runs = [Run("base", k, {"top1": 10.0}) for k in (0, 1)] + [Run("new", k, {"top1": 10.0}) for k in (2, 3)]
    (e,) = effects(runs, "base", ["top1"])
    assert (e.method, e.diff, e.ci_low, e.within_noise) == ("welch", 0.0, None, None)
    assert "same value at every seed (2 vs 2 seeds)" in e.words


def test_equal_differences_up_to_float_rounding_count_as_no_spread():
    # 75.1 - 70.0 and 75.2 - 70.1 differ by about 1.4e-14 in floating point; scipy's interval on
    # them is 1e-13 wide and would call the +5.1 "beyond seed noise".
    assert (75.1 - 70.0) != (75.2 - 70.1)
    runs = [Run("base", 0, {"top1": 70.0}), Run("base", 1, {"top1": 70.1}),
            Run("d", 0, {"top1": 75.1}), Run("d", 1, {"top1": 75.2})]
    (e,) = effects(runs, "base", ["top1"])
    assert e.diff == pytest.approx(5.1) and e.ci_low is None and e.within_noise is None
    # a tenth of a point apart is spread: the interval is the t interval of (5.1, 5.2)
    runs[3] = Run("d", 1, {"top1": 75.3})
    (e,) = effects(runs, "base", ["top1"])
    lo, hi = 5.15 - 12.706205 * 0.05, 5.15 + 12.706205 * 0.05  # mean -+ t(0.975, 1) * sd / sqrt(2)
    assert (e.ci_low, e.ci_high) == (pytest.approx(lo, abs=1e-4), pytest.approx(hi, abs=1e-4))


def test_no_spread_leaves_inversions_and_trick_effects_undecided():
    runs = [Run("a", k, {"top1": 70.0, "map": 41.0}) for k in (0, 1)]
    runs += [Run("b", k, {"top1": 71.0, "map": 31.0 + k / 10}) for k in (0, 1)]  # mAP: real, -9.95
    (i,) = rank_inversions(runs, ys=("map",))
    assert (i.better, i.worse, i.real, i.dx_low) == ("b", "a", None, None) and i.dy_high < 0
    assert "cannot tell" in i.words and "paired differences are all equal" in i.words
    sets = {"a": frozenset(), "b": frozenset({"t"})}
    te = pick(trick_effects(runs, sets, ["top1", "map"]), metric="top1")
    assert (te.effect, te.method, te.ci_low, te.within_noise) == (1.0, "pooled-t", None, None)
    assert "no seed-to-seed spread" in te.words and "beyond" not in te.words
    te = pick(trick_effects(runs, sets, ["top1", "map"]), metric="map")
    assert te.ci_low is not None and te.within_noise is False  # -9.95 with spread: an interval


def test_summary_table_leaves_out_unmeasured_metrics():
    runs = [Run("a", 0, {"top1": 70.0, "map": 40.0}), Run("a", 1, {"top1": 71.0}), Run("b", 0, {"top1": 72.0})]
    t = summary_table(runs, ["top1", "map"])
    assert t["a"]["top1"].n == 2 and t["a"]["map"].n == 1 and "map" not in t["b"]
    json.dumps({r: {m: dataclasses.asdict(s) for m, s in row.items()} for r, row in t.items()})


# ------------------------------------------------------------------ correlations

FIVE = {"r1": {"top1": 70.0, "map": 40.0, "miou": 31.0}, "r2": {"top1": 71.0, "map": 40.9, "miou": 30.2},
        "r3": {"top1": 72.5, "map": 40.5, "miou": 33.0}, "r4": {"top1": 73.0, "map": 42.0, "miou": 31.5},
        "r5": {"top1": 74.2, "map": 42.6, "miou": 32.8}}


def test_correlation_estimates_match_textbook_formulas():
    runs = table(FIVE, noise=0.2)
    res = correlations(runs, ys=("map", "miou"), n_boot=200)
    for y in ("map", "miou"):
        x, yy = recipe_means(runs, "top1"), recipe_means(runs, y)
        assert pick(res, y=y, method="pearson", scale="raw").estimate == pytest.approx(pearson_by_hand(x, yy))
        assert pick(res, y=y, method="spearman", scale="raw").estimate == pytest.approx(
            pearson_by_hand(ranks(x), ranks(yy)))
        assert pick(res, y=y, method="kendall", scale="raw").estimate == pytest.approx(kendall_by_hand(x, yy))
        lx, ly = np.log(x / (100 - x)), np.log(yy / (100 - yy))
        assert pick(res, y=y, method="pearson", scale="logit").estimate == pytest.approx(pearson_by_hand(lx, ly))
    # a rank correlation is invariant under the logit, so it is not a second test of the family
    assert {(r.method, r.scale) for r in res} == {("pearson", "raw"), ("spearman", "raw"), ("kendall", "raw"),
                                                  ("pearson", "logit")}


def test_vectorized_statistics_of_the_bootstrap_match_the_formulas_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(20):
        x, y = rng.integers(0, 4, 7).astype(float), rng.integers(0, 4, 7).astype(float)  # many ties
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        assert float(_kendall(x, y)) == pytest.approx(kendall_by_hand(x, y))
        assert float(_pearson(x, y)) == pytest.approx(pearson_by_hand(x, y))
    x, y = rng.normal(size=6), rng.normal(size=6)
    assert float(_spearman(x, y)) == pytest.approx(pearson_by_hand(ranks(x), ranks(y)))
    assert np.isnan(_pearson(np.ones(4), np.arange(4.0))) and np.isnan(_kendall(np.ones(4), np.arange(4.0)))


def test_permutation_p_is_exact_over_all_pairings():
    runs = table(FIVE, noise=0.2)
    res = correlations(runs, ys=("map",), scales=("raw",), n_boot=200)
    x, y = recipe_means(runs, "top1"), recipe_means(runs, "map")
    for method, stat in (("pearson", pearson_by_hand), ("kendall", kendall_by_hand)):
        obs = abs(stat(x, y))
        perms = list(itertools.permutations(range(5)))
        count = sum(abs(stat(x[list(p)], y)) >= obs - 1e-12 for p in perms)
        c = pick(res, method=method)
        assert c.p_exact is True and c.p == pytest.approx(count / len(perms))
    # Holm over the 3 tests of this call, by hand
    ps = [c.p for c in res]
    order = np.argsort(ps)
    adj = np.maximum.accumulate(np.minimum(1, (3 - np.arange(3)) * np.array(ps)[order]))
    assert [c.p_holm for c in np.array(res)[order]] == pytest.approx(list(adj))


def test_holm_by_hand():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def two_level_quantiles(xs, ys, n_boot, seed):
    """A loop version of the two-level bootstrap of Pearson r (recipes, then seeds)."""
    rng = np.random.default_rng(seed)
    n, draws = len(xs), []
    for _ in range(n_boot):
        mx, my = [], []
        for i in rng.integers(n, size=n):
            j = rng.integers(len(xs[i]), size=len(xs[i]))
            mx.append(xs[i][j].mean())
            my.append(ys[i][j].mean())
        mx, my = np.array(mx), np.array(my)
        if np.ptp(mx) > 0 and np.ptp(my) > 0:
            draws.append(pearson_by_hand(mx, my))
    return np.quantile(draws, [0.025, 0.975])


def test_two_level_bootstrap_interval_matches_a_loop_and_includes_seed_noise():
    runs = table(FIVE | {"r6": {"top1": 75.0, "map": 42.2, "miou": 33.0}}, noise=0.6, seeds=(0, 1, 2, 3))
    c = pick(correlations(runs, ys=("map",), methods=("pearson",), scales=("raw",), n_boot=3000),
             method="pearson")
    by = {}
    for r in runs:
        by.setdefault(r.recipe, []).append((r.metrics["top1"], r.metrics["map"]))
    xs = [np.array([a for a, _ in v]) for v in by.values()]
    ys = [np.array([b for _, b in v]) for v in by.values()]
    lo, hi = two_level_quantiles(xs, ys, 3000, seed=123)
    assert c.ci_low == pytest.approx(lo, abs=0.06) and c.ci_high == pytest.approx(hi, abs=0.06)
    assert c.ci_low <= c.estimate <= c.ci_high
    # the same recipe means without seed noise (every seed equal): recipe resampling alone, narrower
    quiet = [Run(r.recipe, r.seed, {m: float(np.mean([q.metrics[m] for q in runs if q.recipe == r.recipe]))
                                    for m in r.metrics}) for r in runs]
    q = pick(correlations(quiet, ys=("map",), methods=("pearson",), scales=("raw",), n_boot=3000),
             method="pearson")
    assert q.estimate == pytest.approx(c.estimate)
    assert (q.ci_high - q.ci_low) < (c.ci_high - c.ci_low) - 0.05


def test_one_seed_gives_estimates_but_no_intervals():
    runs = table(FIVE, seeds=(0,))
    res = correlations(runs, n_boot=200)
    for c in res:
        assert c.estimate is not None and c.ci_low is None and c.ci_high is None
        assert c.p is not None and "cannot be estimated with one seed" in c.words
    for e in effects(runs, "r1", ["map"]):
        assert e.diff is not None and e.ci_low is None and e.method is None and e.within_noise is None
        assert "cannot be estimated with one seed" in e.words


def test_fewer_than_three_recipes_and_missing_stages():
    runs = table({"a": {"top1": 70.0, "map": 40.0}, "b": {"top1": 71.0, "map": 41.0},
                  "c": {"top1": 72.0}}, noise=0.3)
    res = correlations(runs, ys=("map",), n_boot=100)
    assert all(c.n_recipes == 2 and c.estimate is None and c.p is None and c.p_holm is None for c in res)
    assert "needs at least 3" in res[0].words
    flat = [Run(r.recipe, r.seed, {"top1": r.metrics["top1"], "map": 40.0}) for r in runs]
    flat += [Run("d", s, {"top1": 73.0 + s, "map": 40.0}) for s in (0, 1, 2)]
    res = correlations(flat, ys=("map",), n_boot=100)
    assert all(c.estimate is None and c.p is None and "mAP is the same for every recipe" in c.words for c in res)


def test_correlations_are_deterministic_and_json_ready():
    runs = table(FIVE, noise=0.4)
    a, b = correlations(runs, n_boot=300, seed=7), correlations(runs, n_boot=300, seed=7)
    assert a == b
    assert a != correlations(runs, n_boot=300, seed=8)  # the seed does reach the bootstrap
    text = json.dumps([dataclasses.asdict(c) for c in a])
    assert "Pearson r =" in a[0].words and "Holm-adjusted" in a[0].words and "over 5 recipes" in a[0].words
    assert json.loads(text)[0]["n_boot"] == 300
    assert improvement_probabilities(runs, "r1", ["map"]) == improvement_probabilities(runs, "r1", ["map"])


# ------------------------------------------------------------------ effects


def test_paired_effect_interval_from_the_per_seed_differences():
    runs = [Run("base", s, {"map": v}) for s, v in enumerate([40.0, 41.2, 39.5])]
    runs += [Run("new", s, {"map": v}) for s, v in enumerate([40.6, 41.7, 40.2])]
    (e,) = effects(runs, "base", ["map"])
    d = np.array([0.6, 0.5, 0.7])
    half = T975_2 * d.std(ddof=1) / math.sqrt(3)
    assert (e.method, e.n, e.n_reference) == ("paired", 3, 3)
    assert e.diff == pytest.approx(d.mean())
    assert e.ci_low == pytest.approx(d.mean() - half, abs=1e-5) and e.ci_high == pytest.approx(d.mean() + half, abs=1e-5)
    assert e.within_noise is False and "beyond seed noise (paired over 3 seeds)" in e.words
    assert e.words.startswith("new vs base: mAP +0.60 [")


def test_paired_interval_covers_the_truth_95_percent_of_the_time():
    rng = np.random.default_rng(2024)
    truth, covered, n = 0.4, 0, 2000
    for _ in range(n):
        seed_effect = rng.normal(0, 1.0, 3)  # shared by both recipes of a seed: pairing removes it
        base = 40 + seed_effect + rng.normal(0, 0.3, 3)
        new = 40 + truth + seed_effect + rng.normal(0, 0.3, 3)
        runs = [Run("base", s, {"map": base[s]}) for s in range(3)] + [Run("new", s, {"map": new[s]}) for s in range(3)]
        (e,) = effects(runs, "base", ["map"])
        covered += e.ci_low <= truth <= e.ci_high
    assert 0.93 <= covered / n <= 0.97


def test_welch_when_seed_sets_differ_and_within_noise_both_ways():
    a = [70.1, 70.9, 70.4]
    b = [71.8, 72.9, 72.2, 72.5]
    runs = [Run("ref", s, {"top1": v}) for s, v in zip((0, 1, 2), a)]
    runs += [Run("far", s, {"top1": v}) for s, v in zip((0, 1, 2, 3), b)]
    runs += [Run("near", s, {"top1": v}) for s, v in zip((0, 1, 2), [70.2, 70.3, 71.0])]
    runs += [Run("single", 0, {"top1": 75.0})]
    res = {e.recipe: e for e in effects(runs, "ref", ["top1"])}
    far = res["far"]
    va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 4
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)  # Welch-Satterthwaite
    half = student_t.ppf(0.975, df) * math.sqrt(va + vb)
    diff = np.mean(b) - np.mean(a)
    assert far.method == "welch" and (far.n, far.n_reference) == (4, 3)
    assert far.ci_low == pytest.approx(diff - half) and far.ci_high == pytest.approx(diff + half)
    assert far.within_noise is False and "(Welch, 4 vs 3 seeds)" in far.words
    assert res["near"].method == "paired" and res["near"].within_noise is True and "within noise" in res["near"].words
    assert res["single"].method is None and res["single"].ci_low is None and "one seed" in res["single"].words


def test_bad_tables_raise_naming_the_culprit():
    runs = [Run("base", 0, {"top1": 70.0}), Run("D", 0, {"top1": 71.0})]
    with pytest.raises(ValueError, match=r"'D', seed 0"):
        effects(runs + [Run("D", 0, {"top1": 72.0})], "base", ["top1"])
    with pytest.raises(ValueError, match=r"'basline'.*base, D"):
        effects(runs, "basline", ["top1"])
    with pytest.raises(ValueError, match="'top1'"):
        summary_table([Run("x", 0, {"top1": float("nan")})], ["top1"])


# ------------------------------------------------------------------ rank inversions


def test_rank_inversions_real_and_within_noise():
    means = {"base": {"top1": 76.0, "miou": 36.0},
             "ls": {"top1": 77.0, "miou": 34.0},    # better on ImageNet, clearly worse on ADE20K: real
             "mix": {"top1": 77.3, "miou": 33.9}}   # beats ls on top-1 by 0.3 with 0.5 noise: within noise
    runs = table(means, noise={"top1": 0.15, "miou": 0.15}, seeds=(0, 1, 2, 3, 4), rng_seed=1)
    runs = [Run(r.recipe, r.seed, {"top1": r.metrics["top1"] + (r.seed % 2 - 0.5) * (r.recipe == "mix"),
                                   "miou": r.metrics["miou"]}) for r in runs]
    found = {(i.better, i.worse): i for i in rank_inversions(runs, ys=("miou",))}
    real = found[("ls", "base")]
    assert real.real is True and real.dx > 0 > real.dy and real.dx_low > 0 and real.dy_high < 0
    assert "ls beats base on top-1 (+" in real.words and "a real inversion" in real.words
    assert found[("mix", "base")].real is True
    noisy = found.get(("mix", "ls"))
    assert noisy is not None and noisy.real is False and "within noise on top-1" in noisy.words
    assert len(found) == 3


def test_rank_inversion_not_estimable_with_one_seed():
    runs = [Run("a", 0, {"top1": 70.0, "map": 41.0}), Run("b", 0, {"top1": 71.0, "map": 40.0})]
    (i,) = rank_inversions(runs, ys=("map",))
    assert (i.better, i.worse, i.real, i.dx_low) == ("b", "a", None, None) and "cannot tell" in i.words


# ------------------------------------------------------------------ trick main effects

FACTORIAL = {"baseline": frozenset(), "a": frozenset({"a"}), "b": frozenset({"b"}), "a+b": frozenset({"a", "b"})}


def factorial_runs(seeds=(0, 1, 2), noise=0.05):
    rng = np.random.default_rng(11)
    runs = []
    for recipe, ts in FACTORIAL.items():
        for s in seeds:
            seed_shift = 0.3 * s  # a seed's shift is shared by every recipe: pairing removes it
            runs.append(Run(recipe, s, {"top1": 70 + ("a" in ts) + seed_shift + rng.normal(0, noise),
                                        "miou": 30 - 2 * ("b" in ts) + seed_shift + rng.normal(0, noise)}))
    return runs


def test_trick_effects_recover_an_additive_factorial():
    res = trick_effects(factorial_runs(), FACTORIAL, ["top1", "miou"])
    a_top1, b_miou = pick(res, trick="a", metric="top1"), pick(res, trick="b", metric="miou")
    assert a_top1.effect == pytest.approx(1.0, abs=0.1) and b_miou.effect == pytest.approx(-2.0, abs=0.1)
    assert a_top1.within_noise is False and b_miou.within_noise is False
    assert pick(res, trick="b", metric="top1").effect == pytest.approx(0.0, abs=0.1)
    assert pick(res, trick="a", metric="miou").effect == pytest.approx(0.0, abs=0.1)
    assert (a_top1.n_pairs, a_top1.n_diffs, a_top1.method) == (2, 6, "pooled-t")
    assert set(a_top1.pairs.split("; ")) == {"a vs baseline", "a+b vs b"}
    assert "trick 'a' on top-1: +1.0" in a_top1.words and "beyond seed noise" in a_top1.words


def test_one_pair_pooled_t_equals_the_paired_effect():
    runs = [r for r in factorial_runs(noise=0.3) if r.recipe in ("a", "baseline")]
    (te,) = trick_effects(runs, FACTORIAL, ["top1"])
    (e,) = effects(runs, "baseline", ["top1"])
    assert (te.effect, te.ci_low, te.ci_high) == pytest.approx((e.diff, e.ci_low, e.ci_high))


def test_trick_sets_are_matched_by_exactly_one_trick():
    loo = {"full": {"a", "b", "c"}, "no-a": {"b", "c"}, "no-b": {"a", "c"}, "no-c": {"a", "b"}}
    runs = [Run(r, s, {"top1": 70.0 + s + len(ts) + 0.01 * s * len(r)}) for r, ts in loo.items() for s in (0, 1)]
    res = {t.trick: t for t in trick_effects(runs, loo, ["top1"])}
    assert {k: v.pairs for k, v in res.items()} == {"a": "full vs no-a", "b": "full vs no-b", "c": "full vs no-c"}
    one = {"base": set(), "+a": {"a"}, "+b": {"b"}}
    cumulative = {"base": set(), "+a": {"a"}, "+ab": {"a", "b"}, "+abc": {"a", "b", "c"}}
    runs = [Run(r, 0, {"top1": 70.0 + len(r)}) for r in ("base", "+a", "+b", "+ab", "+abc")]
    res = {t.trick: t for t in trick_effects(runs, one, ["top1"])}
    assert (res["a"].pairs, res["b"].pairs) == ("+a vs base", "+b vs base")
    assert res["a"].ci_low is None and "cannot be estimated with one seed and one pair" in res["a"].words
    res = {t.trick: t for t in trick_effects(runs, cumulative, ["top1"])}
    assert [res[k].pairs for k in "abc"] == ["+a vs base", "+ab vs +a", "+abc vs +ab"]
    with pytest.raises(ValueError, match="'base' and 'same'"):
        trick_effects(runs + [Run("same", 0, {"top1": 1.0})], {"base": set(), "same": set()}, ["top1"])


def test_pooled_t_is_the_anova_contrast_with_an_interaction_and_unequal_seeds():
    # 'a' adds +1 without 'b' and +3 with it (an interaction); the b pair has only seeds 0, 1
    d1 = {0: 1.1, 1: 0.8, 2: 1.2}
    d2 = {0: 3.3, 1: 2.9}
    runs = [Run("baseline", s, {"top1": 70.0 + s}) for s in d1] + [Run("a", s, {"top1": 70.0 + s + d1[s]}) for s in d1]
    runs += [Run("b", s, {"top1": 72.0 - s}) for s in d2] + [Run("a+b", s, {"top1": 72.0 - s + d2[s]}) for s in d2]
    te = pick(trick_effects(runs, FACTORIAL, ["top1"]), trick="a")
    g1, g2 = np.array(list(d1.values())), np.array(list(d2.values()))
    mse = (((g1 - g1.mean()) ** 2).sum() + ((g2 - g2.mean()) ** 2).sum()) / (5 - 2)  # one-way ANOVA, df 3
    effect = (g1.mean() + g2.mean()) / 2
    half = student_t.ppf(0.975, 3) * math.sqrt(mse * 0.25 * (1 / 3 + 1 / 2))
    assert (te.method, te.n_pairs, te.n_diffs) == ("pooled-t", 2, 5)
    assert (te.effect, te.ci_low, te.ci_high) == pytest.approx((effect, effect - half, effect + half))
    assert "pair effects +1.03 to +3.10" in te.words


def test_a_bundle_is_one_factor_whose_pairs_differ_by_all_its_members():
    # A 2x2 of variant (resnet_d) and the efficient bundle, as trickbench.tricks names them, and a
    # recipe with one member alone: 'efficient' pairs only recipes that differ by all four.
    eff = {"linear_scaling", "warmup", "zero_gamma", "no_bias_decay"}
    sets = {"b": set(), "d": {"resnet_d"}, "b-eff": eff, "d-eff": eff | {"resnet_d"}, "b-ls": {"linear_scaling"}}
    d1 = {0: 0.6, 1: 0.2, 2: 0.5}   # b-eff - b
    d2 = {0: 1.4, 1: 1.1}           # d-eff - d: only seeds 0 and 1
    runs = [Run("b", s, {"top1": 70.0 + s}) for s in d1] + [Run("b-eff", s, {"top1": 70.0 + s + d1[s]}) for s in d1]
    runs += [Run("d", s, {"top1": 71.0 - s}) for s in (0, 1, 2)]
    runs += [Run("d-eff", s, {"top1": 71.0 - s + d2[s]}) for s in d2]
    runs += [Run("b-ls", s, {"top1": 70.1 + s}) for s in d1]
    factors = factor_members(sets.values())
    assert factors["efficient"] == frozenset(eff)
    res = trick_effects(runs, sets, ["top1"], factors)
    te = pick(res, trick="efficient")
    g1, g2 = np.array(list(d1.values())), np.array(list(d2.values()))
    N, P = 5, 2
    s2 = (((g1 - g1.mean()) ** 2).sum() + ((g2 - g2.mean()) ** 2).sum()) / (N - P)  # pooled within-pair variance
    effect = (g1.mean() + g2.mean()) / P                                          # mean of the pair means
    half = student_t.ppf(0.975, N - P) * math.sqrt(s2 / P ** 2 * (1 / 3 + 1 / 2))
    assert (te.method, te.n_pairs, te.n_diffs) == ("pooled-t", 2, 5)
    assert set(te.pairs.split("; ")) == {"b-eff vs b", "d-eff vs d"}
    assert (te.effect, te.ci_low, te.ci_high) == pytest.approx((effect, effect - half, effect + half))
    assert te.words.startswith("trick 'efficient' on top-1: +0.84 [") and "pair effects +0.43 to +1.25" in te.words
    assert pick(res, trick="resnet_d").n_pairs == 2  # d vs b, d-eff vs b-eff
    assert pick(res, trick="linear_scaling").pairs == "b-ls vs b"  # a member alone is its own factor
    assert pick(res, trick="warmup").n_pairs == 0 and "no two recipes differ" in pick(res, trick="warmup").words
    # without the factors argument every name stands for itself: no bundle
    assert "efficient" not in {t.trick for t in trick_effects(runs, sets, ["top1"])}


def test_pairs_t_with_one_seed_and_several_pairs():
    runs = [r for r in factorial_runs(seeds=(0,))]
    te = pick(trick_effects(runs, FACTORIAL, ["top1"]), trick="a")
    d = np.array([[r.metrics["top1"] for r in runs if r.recipe == w][0] - [r.metrics["top1"] for r in runs
                  if r.recipe == wo][0] for w, wo in (("a", "baseline"), ("a+b", "b"))])
    half = student_t.ppf(0.975, 1) * d.std(ddof=1) / math.sqrt(2)
    assert te.method == "pairs-t" and (te.ci_low, te.ci_high) == pytest.approx((d.mean() - half, d.mean() + half))


# ------------------------------------------------------------------ probability of improvement


def test_probability_of_improvement_counts_wins():
    runs = [Run("ref", s, {"map": v}) for s, v in enumerate([40.0, 41.0, 42.0])]
    runs += [Run("new", s, {"map": v}) for s, v in enumerate([40.5, 41.0, 43.0])]
    (p,) = improvement_probabilities(runs, "ref", ["map"], n_boot=500)
    wins = sum((a > b) + 0.5 * (a == b) for a in [40.5, 41.0, 43.0] for b in [40.0, 41.0, 42.0])
    assert p.p_improve == pytest.approx(wins / 9) and p.method == "paired"
    assert 0 <= p.ci_low <= p.p_improve <= p.ci_high <= 1

"""Seed noise of a transfer study split into its two sources, recipes compared against it, and
the number of seeds a next study needs.

A study has R recipes, P pretraining seeds (backbones) per recipe and F fine-tunes per backbone,
the fine-tune seeds the same for every backbone. A metric is modelled as
y = mu_recipe + b_backbone + e, b ~ N(0, sigma_p^2) the pretraining-seed effect, e ~ N(0, sigma_f^2)
the fine-tune noise (the balanced nested random model of Burdick & Graybill, "Confidence
Intervals on Variance Components", 1992).

* :func:`variance_components`: sigma_p and sigma_f by the method of moments, sigma_f with its
  exact chi-square interval, sigma_p with the modified large-sample (MLS) interval of Graybill &
  Wang (1980) / Ting, Burdick, Graybill, Jeyaratnam & Lu (1990), as in Burdick & Graybill (1992).
* :func:`finetune_seed_effect`: does a fine-tune seed (head init, data order) move every
  backbone alike? The two-way ANOVA without replication, backbones x fine-tune seeds.
* :func:`comparisons`: every recipe against a reference on the per-backbone means, with
  Dunnett's many-to-one intervals (``scipy.stats.dunnett``); :func:`all_pairs`: every pair with
  Tukey's HSD (``scipy.stats.tukey_hsd``). The backbone, not the fine-tune, is the unit: fine-tunes
  of one backbone share its pretraining seed and are not independent.
* :func:`seed_plan`: the (P, F) of least cost with the stated power for the stated effect.

Pure functions from a table of :class:`Obs` to frozen dataclasses of numbers (``None`` where a
number cannot be estimated, and a ``reason`` saying why); ``words`` (and ``lines``) derive the
sentences a report quotes, :func:`record` is what a report writes. No torch, no file I/O.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, stats

CONFIDENCE = 0.95
SIGNIFICANCE = 0.05  # finetune_seed_effect: found when p < this
# The harmonic-mean design of an unbalanced table is only an approximation of the nested ANOVA.
UNBALANCED = "approximate: unbalanced design"
# Dunnett's critical value in seed_plan: multivariate_t.cdf is randomised quasi-Monte Carlo; with
# 20,000 points and one fixed generator per evaluation its error is ~1e-5 in probability (~1e-4 in
# the critical value, checked against quadrature in the tests) and the function of c is
# deterministic, so a root finder can bracket it.
MVT_POINTS = 20_000
MVT_SEED = 0
NAMES = {"top1": "top-1", "top5": "top-5", "map": "mAP", "map_area": "mAP (area)", "miou": "mIoU",
         "aacc": "aAcc", "macc": "mAcc"}


@dataclass(frozen=True)
class Obs:
    """One fine-tune of one backbone: ``seed`` pretrained it, ``ft_seed`` fine-tuned it."""
    recipe: str
    seed: int        # pretraining seed
    ft_seed: int     # fine-tune seed
    value: float


Cells = dict[str, dict[int, dict[int, float]]]  # recipe -> pretraining seed -> fine-tune seed -> value


def _cells(obs: Sequence[Obs]) -> Cells:
    """recipe -> pretraining seed -> fine-tune seed -> value, recipes in order of first appearance,
    seeds sorted; a duplicate or a value that is not a finite number is a ValueError."""
    cells: Cells = {}
    for o in obs:
        if not (isinstance(o.value, (int, float, np.integer, np.floating)) and math.isfinite(o.value)):
            raise ValueError(f"recipe {o.recipe!r}, seed {o.seed}, fine-tune seed {o.ft_seed}: value {o.value!r} "
                             f"is not a finite number")
        cell = cells.setdefault(o.recipe, {}).setdefault(o.seed, {})
        if o.ft_seed in cell:
            raise ValueError(f"duplicate run: recipe {o.recipe!r}, seed {o.seed}, fine-tune seed {o.ft_seed}")
        cell[o.ft_seed] = float(o.value)
    return {r: {s: dict(sorted(c.items())) for s, c in sorted(seeds.items())} for r, seeds in cells.items()}


def name(metric: str) -> str:
    return NAMES.get(metric, metric)


def _float(v) -> float | None:
    """A plain float for JSON, None for NaN/inf/None."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def _num(v: float | None) -> str:
    if v is None:
        return "n/a"
    return "0" if v == 0 else f"{v:.2f}"


def _signed(v: float) -> str:
    return f"{v:+.2f}"


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.2g}"


def _pct(confidence: float) -> str:
    return f"{100 * confidence:g}%"


def _no_spread(spread: float, values: np.ndarray) -> bool:
    """True when ``spread`` is zero up to float rounding of ``values``."""
    scale = max(1.0, float(np.abs(values).max())) if np.size(values) else 1.0
    return bool(spread <= 1e-9 * scale)


# ---------------------------------------------------------------- 1. variance components


@dataclass(frozen=True)
class VarianceComponents:
    metric: str
    recipes: int               # R
    pretrain_seeds: int        # P: backbones per recipe (the fewest of any recipe when unbalanced)
    finetune_seeds: int        # F: fine-tunes per backbone (the fewest of any backbone when unbalanced)
    backbones: int             # all backbones of the table
    runs: int                  # all fine-tunes of the table
    balanced: bool             # every recipe has P backbones and every backbone F fine-tunes
    f_harmonic: float | None   # the F of the formulas: harmonic mean of fine-tunes per backbone (= F if balanced)
    confidence: float
    df_f: int                  # R P (F - 1) when balanced
    df_p: int                  # R (P - 1) when balanced
    ms_f: float | None         # pooled variance between fine-tunes of one backbone
    ms_p: float | None         # F x pooled variance of backbone means around their recipe mean
    sd_f: float | None         # sqrt(MS_f)
    sd_f_low: float | None     # exact chi-square interval
    sd_f_high: float | None
    sd_p: float | None         # sqrt(max(0, (MS_p - MS_f) / F))
    sd_p_low: float | None     # MLS interval (Graybill-Wang), truncated at 0
    sd_p_high: float | None
    truncated: bool            # the sigma_p^2 estimate or a bound was below 0 and was set to 0
    method: str
    approximate: bool          # unbalanced: harmonic-mean F, intervals approximate
    reason: str | None = None  # why the components could not be separated

    @property
    def words(self) -> str:
        head = f"{name(self.metric)}: "
        if self.reason is not None:
            return head + f"seed noise cannot be split into pretraining and fine-tune parts: {self.reason}"
        text = (head + f"fine-tune sd {_num(self.sd_f)} [{_num(self.sd_f_low)}, {_num(self.sd_f_high)}] "
                f"(chi-square, {self.df_f} df); pretraining sd {_num(self.sd_p)} "
                f"[{_num(self.sd_p_low)}, {_num(self.sd_p_high)}] (Graybill-Wang, {self.df_p} df")
        if self.truncated:
            which = ("the estimate and both bounds were below 0 and are shown as 0: the backbone means of a "
                     "recipe agree more closely than the fine-tune noise alone predicts, which happens by chance "
                     "with few degrees of freedom; the pretraining seed's share is small, not known to be 0"
                     if self.sd_p_high == 0 else
                     "the estimate was below 0 and is shown as 0" if self.sd_p == 0 else
                     "the lower bound was below 0 and is shown as 0")
            text += f"; {which}"
        text += f"), {_pct(self.confidence)} intervals"
        if self.approximate:
            text += f"; {UNBALANCED} (harmonic-mean {self.f_harmonic:.2f} fine-tunes per backbone)"
        return text


def _mls_bounds(s1: float, n1: int, s2: float, n2: int, c1: float, c2: float,
                confidence: float) -> tuple[float, float, float]:
    """theta = c1 S1^2 - c2 S2^2 and its two-sided MLS interval (Burdick & Graybill 1992;
    Ting et al. 1990), ``s1``, ``s2`` the mean squares S1^2, S2^2 on n1, n2 df.

    With a = (1 - confidence) / 2 for each one-sided bound and F_{a; n, m} the *upper* a quantile
    of F(n, m) (F_{a; n, inf} = chi2 upper quantile / n):
    G1 = 1 - 1/F_{a;n1,inf} in (0, 1), H1 = 1/F_{1-a;n1,inf} - 1 > 0, likewise G2, H2 for n2,
    G12 = ((F_{a;n1,n2} - 1)^2 - G1^2 F_{a;n1,n2}^2 - H2^2) / F_{a;n1,n2},
    H12 = ((1 - F_{1-a;n1,n2})^2 - H1^2 F_{1-a;n1,n2}^2 - G2^2) / F_{1-a;n1,n2},
    L = theta - sqrt(G1^2 c1^2 S1^4 + H2^2 c2^2 S2^4 + G12 c1 c2 S1^2 S2^2),
    U = theta + sqrt(H1^2 c1^2 S1^4 + G2^2 c2^2 S2^4 + H12 c1 c2 S1^2 S2^2). Not truncated here."""
    a = (1 - confidence) / 2
    g1 = 1 - n1 / stats.chi2.isf(a, n1)
    h1 = n1 / stats.chi2.ppf(a, n1) - 1
    g2 = 1 - n2 / stats.chi2.isf(a, n2)
    h2 = n2 / stats.chi2.ppf(a, n2) - 1
    f_up, f_lo = stats.f.isf(a, n1, n2), stats.f.ppf(a, n1, n2)
    g12 = ((f_up - 1) ** 2 - g1 ** 2 * f_up ** 2 - h2 ** 2) / f_up
    h12 = ((1 - f_lo) ** 2 - h1 ** 2 * f_lo ** 2 - g2 ** 2) / f_lo
    theta = c1 * s1 - c2 * s2
    vl = g1 ** 2 * c1 ** 2 * s1 ** 2 + h2 ** 2 * c2 ** 2 * s2 ** 2 + g12 * c1 * c2 * s1 * s2
    vu = h1 ** 2 * c1 ** 2 * s1 ** 2 + g2 ** 2 * c2 ** 2 * s2 ** 2 + h12 * c1 * c2 * s1 * s2
    return theta, theta - math.sqrt(max(vl, 0.0)), theta + math.sqrt(max(vu, 0.0))


def variance_components(obs: Sequence[Obs], metric: str, confidence: float = CONFIDENCE) -> VarianceComponents:
    """sigma_f and sigma_p of the nested model, method of moments (Burdick & Graybill 1992).

    MS_f = pooled variance between the fine-tunes of one backbone, df_f = R P (F - 1);
    MS_p = F x pooled variance of a recipe's backbone means around the recipe's mean, df_p = R (P - 1)
    (recipe effects cancel); sigma_f^2 = MS_f, sigma_p^2 = (MS_p - MS_f) / F. sigma_f's interval is
    the exact chi-square one, df_f MS_f / chi2 quantiles; sigma_p's the MLS interval of
    :func:`_mls_bounds` with c1 = c2 = 1/F. The estimate and bounds of sigma_p^2 below 0 are set to
    0 (``truncated``), then square roots are taken.

    Unbalanced tables (backbones with different numbers of fine-tunes, recipes with different
    numbers of backbones) are still estimated, with the harmonic mean of the fine-tunes per
    backbone in place of F and the pooled (over recipes, df = sum of P_r - 1) variance of backbone
    means: ``approximate``. No fine-tune replicates (df_f = 0) or no recipe with two backbones
    (df_p = 0) gives a ``reason`` and no numbers.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    cells = _cells(obs)
    per_recipe = [len(seeds) for seeds in cells.values()]
    per_backbone = [len(c) for seeds in cells.values() for c in seeds.values()]
    base = dict(metric=metric, recipes=len(cells), pretrain_seeds=min(per_recipe, default=0),
                finetune_seeds=min(per_backbone, default=0), backbones=len(per_backbone), runs=sum(per_backbone),
                balanced=len(set(per_recipe)) <= 1 and len(set(per_backbone)) <= 1, confidence=confidence)
    ss_f, df_f = 0.0, 0
    ss_p, df_p, inv_n = 0.0, 0, []
    for seeds in cells.values():
        means = []
        for c in seeds.values():
            v = np.fromiter(c.values(), float)
            ss_f += float(((v - v.mean()) ** 2).sum())
            df_f += v.size - 1
            means.append(v.mean())
        if len(means) >= 2:
            m = np.array(means)
            ss_p += float(((m - m.mean()) ** 2).sum())
            df_p += m.size - 1
            inv_n += [1.0 / len(c) for c in seeds.values()]
    base["approximate"] = not base["balanced"]
    method = "method of moments; chi-square (fine-tune); MLS, Graybill-Wang (pretraining)"
    reason = None
    if not cells:
        reason = "no runs"
    elif df_f == 0:
        reason = (f"every backbone was fine-tuned once (F = {base['finetune_seeds']}): with no replicate "
                  f"fine-tunes the fine-tune noise cannot be told from the pretraining-seed noise; run 2+ "
                  f"fine-tune seeds per backbone")
    elif df_p == 0:
        reason = ("every recipe has one backbone (P = 1): with no replicate pretraining seeds the "
                  "pretraining-seed noise cannot be estimated; run 2+ pretraining seeds per recipe")
    if reason is not None:
        return VarianceComponents(**base, f_harmonic=None, df_f=df_f, df_p=df_p, ms_f=None, ms_p=None, sd_f=None,
                                  sd_f_low=None, sd_f_high=None, sd_p=None, sd_p_low=None, sd_p_high=None,
                                  truncated=False, method=method, reason=reason)
    f_h = len(inv_n) / sum(inv_n)
    ms_f = ss_f / df_f
    ms_p = f_h * ss_p / df_p
    a = (1 - confidence) / 2
    f_low = math.sqrt(df_f * ms_f / stats.chi2.isf(a, df_f))
    f_high = math.sqrt(df_f * ms_f / stats.chi2.ppf(a, df_f))
    theta, lo, hi = _mls_bounds(ms_p, df_p, ms_f, df_f, 1 / f_h, 1 / f_h, confidence)
    truncated = min(theta, lo, hi) < 0
    return VarianceComponents(
        **base, f_harmonic=float(f_h), df_f=df_f, df_p=df_p, ms_f=float(ms_f), ms_p=float(ms_p),
        sd_f=math.sqrt(ms_f), sd_f_low=f_low, sd_f_high=f_high, sd_p=math.sqrt(max(theta, 0.0)),
        sd_p_low=math.sqrt(max(lo, 0.0)), sd_p_high=math.sqrt(max(hi, 0.0)), truncated=bool(truncated),
        method=method + (f"; {UNBALANCED}" if not base["balanced"] else ""), reason=None)


# ---------------------------------------------------------------- 2. a common fine-tune seed effect


@dataclass(frozen=True)
class SeedEffect:
    metric: str
    backbones: int             # B: backbones with every fine-tune seed (the table tested)
    finetune_seeds: int        # fine-tune seeds of the table
    left_out: int              # backbones missing a fine-tune seed, not tested
    statistic: float | None    # F = MS_seed / MS_residual
    df1: int | None            # F - 1
    df2: int | None            # (B - 1)(F - 1)
    pvalue: float | None
    found: bool | None         # p < 0.05
    seed_sd: float | None      # sqrt(max(0, (MS_seed - MS_residual) / B)): sd of the common seed effect
    reason: str | None = None

    @property
    def words(self) -> str:
        head = f"{name(self.metric)}: "
        if self.reason is not None:
            return head + f"a common fine-tune seed effect cannot be tested: {self.reason}"
        test = (f"F = {self.statistic:.2f} on {self.df1} and {self.df2} df, p {_p(self.pvalue)}, "
                f"{self.backbones} backbones x {self.finetune_seeds} fine-tune seeds")
        if self.left_out:
            test += f"; {self.left_out} backbones without every fine-tune seed left out"
        if self.found:
            return (head + f"a fine-tune seed moves every backbone alike (sd {_num(self.seed_sd)} points; {test}): "
                    f"compare recipes on the same fine-tune seeds")
        return head + f"no common fine-tune seed effect found ({test})"


def finetune_seed_effect(obs: Sequence[Obs], metric: str) -> SeedEffect:
    """Whether a fine-tune seed (the same head init and data order for every backbone) has an
    effect common to all backbones: the two-way ANOVA without replication, backbones x fine-tune
    seeds, on the backbones that have every fine-tune seed of the table. Each backbone's mean is
    subtracted first (so recipe and backbone effects cancel); F = MS_seed / MS_residual on F - 1 and
    (B - 1)(F - 1) df; found when p < 0.05. Under the nested model (no common seed effect) the
    test is exact. A common effect found here is part of ``variance_components``' MS_f."""
    cells = _cells(obs)
    seeds = sorted({ft for rs in cells.values() for c in rs.values() for ft in c})
    rows = [[c[ft] for ft in seeds] for rs in cells.values() for c in rs.values() if len(c) == len(seeds)]
    n_all = sum(len(rs) for rs in cells.values())
    B, F = len(rows), len(seeds)
    base = dict(metric=metric, backbones=B, finetune_seeds=F, left_out=n_all - B)
    empty = dict(statistic=None, df1=None, df2=None, pvalue=None, found=None, seed_sd=None)
    if F < 2:
        return SeedEffect(**base, **empty, reason=f"{F} fine-tune seed{'s' * (F != 1)} (needs 2+)")
    if B < 2:
        return SeedEffect(**base, **empty, reason=f"{B} backbone{'s' * (B != 1)} with every fine-tune seed "
                                                 f"(needs 2+)")
    y = np.array(rows)
    z = y - y.mean(axis=1, keepdims=True)
    seed_means = z.mean(axis=0)
    ss_seed = B * float((seed_means ** 2).sum())
    ss_res = float(((z - seed_means) ** 2).sum())
    df1, df2 = F - 1, (B - 1) * (F - 1)
    if _no_spread(ss_res, y):
        return SeedEffect(**base, **empty, reason="no residual variation: every backbone moved identically "
                                                  "with the fine-tune seed")
    ms_seed, ms_res = ss_seed / df1, ss_res / df2
    stat = ms_seed / ms_res
    p = float(stats.f.sf(stat, df1, df2))
    return SeedEffect(**base, statistic=float(stat), df1=df1, df2=df2, pvalue=p, found=bool(p < SIGNIFICANCE),
                      seed_sd=math.sqrt(max(0.0, (ms_seed - ms_res) / B)))


def backbone_means(obs: Sequence[Obs]) -> dict[str, list[float]]:
    """recipe -> the mean over its fine-tunes of each backbone, by pretraining seed; recipes in
    order of first appearance."""
    return {r: [float(np.mean(list(c.values()))) for c in seeds.values()] for r, seeds in _cells(obs).items()}


# ---------------------------------------------------------------- 3. recipes against a reference, all pairs


def _interval_words(est: float, lo: float, hi: float) -> str:
    return f"{_signed(est)} [{_num(lo)}, {_num(hi)}]"


@dataclass(frozen=True)
class Comparison:
    recipe: str
    reference: str
    metric: str
    estimate: float | None     # mean(recipe) - mean(reference) over backbone means, points
    low: float | None          # family-wise (Dunnett) interval
    high: float | None
    df: int | None             # pooled: N - k over every recipe compared
    pvalue: float | None       # Dunnett's adjusted p
    confidence: float
    method: str | None
    n: int                     # backbones of the recipe
    n_reference: int
    reason: str | None = None

    @property
    def beyond_noise(self) -> bool | None:
        return _beyond(self)

    @property
    def words(self) -> str:
        return _pooled_words(self, self.recipe, self.reference, self.n, self.n_reference)


@dataclass(frozen=True)
class PairDifference:
    a: str
    b: str
    metric: str
    estimate: float | None     # mean(a) - mean(b) over backbone means, points
    low: float | None          # family-wise (Tukey HSD) interval
    high: float | None
    df: int | None             # N - k
    pvalue: float | None       # Tukey's adjusted p
    confidence: float
    method: str | None
    n_a: int
    n_b: int
    reason: str | None = None

    @property
    def beyond_noise(self) -> bool | None:
        return _beyond(self)

    @property
    def words(self) -> str:
        return _pooled_words(self, self.a, self.b, self.n_a, self.n_b)


def _beyond(d: Comparison | PairDifference) -> bool | None:
    return None if d.low is None else bool(d.low > 0 or d.high < 0)


def _pooled_words(d: Comparison | PairDifference, a: str, b: str, n_a: int, n_b: int) -> str:
    """A pooled family-wise difference a - b in one sentence (Dunnett's and Tukey's alike)."""
    head = f"{a} vs {b}: {name(d.metric)}"
    if d.reason is not None:
        est = f" {_signed(d.estimate)} points;" if d.estimate is not None else ""
        return f"{head}{est} cannot be compared: {d.reason}"
    verdict = "beyond seed noise" if _beyond(d) else "within noise"
    return (f"{head} {_interval_words(d.estimate, d.low, d.high)} points, {verdict} "
            f"({d.method}, {_pct(d.confidence)} family-wise, {n_a} vs {n_b} backbones, "
            f"{d.df} df, adjusted p {_p(d.pvalue)})")


def _pooled(samples: Mapping[str, np.ndarray]) -> tuple[int, str | None]:
    """The pooled df N - k and why the pooled test cannot run (None when it can)."""
    df = sum(v.size for v in samples.values()) - len(samples)
    if df < 1:
        return df, (f"pooled df = {df} (every recipe has one backbone): no backbone-to-backbone spread; "
                    f"run 2+ pretraining seeds")
    allv = np.concatenate(list(samples.values()))
    ss = sum(float(((v - v.mean()) ** 2).sum()) for v in samples.values())
    if _no_spread(ss, allv):
        return df, "the backbones of each recipe gave identical means: no spread measured"
    return df, None


def comparisons(means: Mapping[str, Sequence[float]], reference: str, metric: str,
                confidence: float = CONFIDENCE, seed: int = 0) -> list[Comparison]:
    """Every other recipe against ``reference`` on the per-backbone means (:func:`backbone_means`):
    Dunnett's many-to-one test (Dunnett 1955) by ``scipy.stats.dunnett``, two-sided, with its
    family-wise ``confidence`` intervals and adjusted p-values; the error variance is pooled over
    every recipe given with backbones (df = N - k). scipy evaluates the multivariate t by
    randomised QMC: the generator is ``default_rng(seed)``, so the same input gives the same numbers.
    Recipes with no backbones are left out of the test and returned with a ``reason``."""
    if reference not in means:
        raise ValueError(f"unknown reference recipe {reference!r}; known recipes: {', '.join(means)}")
    samples = {r: np.asarray(v, dtype=float) for r, v in means.items() if len(v) > 0}
    others = [r for r in means if r != reference]
    k = len(samples)
    method = f"Dunnett (scipy.stats.dunnett), pooled over {k} recipes"
    df, why = _pooled(samples)
    ref = samples.get(reference)
    if ref is None:
        why = f"the reference {reference} has no backbones"
    out: dict[str, Comparison] = {}
    for r in others:
        n, n_ref = len(means[r]), len(means[reference])
        est = float(samples[r].mean() - ref.mean()) if r in samples and ref is not None else None
        reason = why or (None if r in samples else "no backbones")
        if reason is not None:
            out[r] = Comparison(r, reference, metric, est, None, None, None, None, confidence, None, n, n_ref, reason)
    tested = [r for r in others if r not in out]
    if tested:
        res = stats.dunnett(*[samples[r] for r in tested], control=ref, rng=np.random.default_rng(seed))
        ci = res.confidence_interval(confidence_level=confidence)
        for i, r in enumerate(tested):
            out[r] = Comparison(r, reference, metric, float(samples[r].mean() - ref.mean()), _float(ci.low[i]),
                                _float(ci.high[i]), int(df), _float(res.pvalue[i]), confidence, method,
                                len(means[r]), len(means[reference]))
    return [out[r] for r in others]


def all_pairs(means: Mapping[str, Sequence[float]], metric: str,
              confidence: float = CONFIDENCE) -> list[PairDifference]:
    """Every pair (a, b), a < b by name, on the per-backbone means: Tukey's HSD (Tukey-Kramer for
    unequal numbers of backbones) by ``scipy.stats.tukey_hsd``, family-wise ``confidence``
    intervals for mean(a) - mean(b) and adjusted p-values, df = N - k. Recipes with no backbones
    are left out of the test; their pairs come back with a ``reason``."""
    names = sorted(means)
    samples = {r: np.asarray(means[r], dtype=float) for r in names if len(means[r]) > 0}
    tested = [r for r in names if r in samples]
    df, why = _pooled(samples)
    if len(tested) < 2:
        why = "fewer than 2 recipes with backbones"
    res = ci = None
    if why is None:
        res = stats.tukey_hsd(*[samples[r] for r in tested])
        ci = res.confidence_interval(confidence_level=confidence)
    out = []
    for x, a in enumerate(names):
        for b in names[x + 1:]:
            n_a, n_b = len(means[a]), len(means[b])
            est = float(samples[a].mean() - samples[b].mean()) if a in samples and b in samples else None
            if why is not None or est is None:
                empty = " and ".join(r for r in (a, b) if r not in samples)
                reason = why if est is not None else f"no backbones for {empty}"
                out.append(PairDifference(a, b, metric, est, None, None, None, None, confidence, None, n_a, n_b,
                                          reason))
                continue
            i, j = tested.index(a), tested.index(b)
            out.append(PairDifference(a, b, metric, est, _float(ci.low[i, j]), _float(ci.high[i, j]), int(df),
                                      _float(res.pvalue[i, j]), confidence, "Tukey HSD (scipy.stats.tukey_hsd)",
                                      n_a, n_b))
    return out


# ---------------------------------------------------------------- 4. how many seeds


@functools.lru_cache(maxsize=4096)
def dunnett_critical_value(comparisons: int, df: int, alpha: float) -> float:
    """Dunnett's two-sided critical value c for ``comparisons`` many-to-one comparisons with equal
    groups (correlation 0.5) at ``df`` degrees of freedom: P(max |T_i| <= c) = 1 - alpha, T the
    multivariate t. One comparison: Student's t quantile (exact). More: ``brentq`` on
    ``scipy.stats.multivariate_t(shape=..., df=df).cdf`` over the box [-c, c]^m (MVT_POINTS points,
    one fixed generator, so the function of c is deterministic), bracketed by the single t
    quantile below and Sidak's (1 - alpha)^(1/m) quantile above (Sidak's inequality holds for the
    multivariate t). Cached: seed_plan calls it in a loop."""
    if comparisons < 1 or df < 1:
        raise ValueError(f"needs 1+ comparisons and 1+ df, got {comparisons}, {df}")
    lo = float(stats.t.isf(alpha / 2, df))
    if comparisons == 1:
        return lo
    m = comparisons
    shape = np.full((m, m), 0.5)
    np.fill_diagonal(shape, 1.0)
    mvt = stats.multivariate_t(shape=shape, df=df)

    def covered(c: float) -> float:
        box = np.full(m, c)
        return float(mvt.cdf(box, lower_limit=-box, maxpts=MVT_POINTS,
                             random_state=np.random.default_rng(MVT_SEED))) - (1 - alpha)

    hi = float(stats.t.isf((1 - (1 - alpha) ** (1 / m)) / 2, df))
    return float(optimize.brentq(covered, 0.999 * lo, 1.001 * hi, xtol=1e-5))


def _power(crit: float, df: int, delta: np.ndarray | float) -> np.ndarray:
    """Two-sided power of a t test at critical value ``crit``, noncentrality ``delta``."""
    return 1 - stats.nct.cdf(crit, df, delta) + stats.nct.cdf(-crit, df, delta)


@dataclass(frozen=True)
class SeedPlan:
    metric: str
    recipes: int               # R, the reference included
    effect: float              # the difference to detect, points (stated, never the observed one)
    power: float               # the power asked for
    alpha: float               # family-wise, two-sided, over the R - 1 comparisons with the reference
    sd_p: float | None         # planned with: the estimated pretraining-seed sd
    sd_f: float | None         # and fine-tune sd
    cost_pretrain: float       # device-hours per backbone
    cost_finetune: float       # device-hours per fine-tune
    cost_trial: float          # device-hours per extra trial per backbone
    trials: int
    max_pretrain_seeds: int
    max_finetune_seeds: int
    pretrain_seeds: int | None   # P, the plan (the maxima when the power is not reachable)
    finetune_seeds: int | None   # F
    cost: float | None           # R P (cost_pretrain + trials cost_trial + F cost_finetune), device-hours
    cost_per_backbone: float | None
    sd_difference: float | None  # sqrt(2 (sigma_p^2 / P + sigma_f^2 / (P F)))
    critical_value: float | None  # Dunnett, R - 1 comparisons, R (P - 1) df
    df: int | None
    achieved_power: float | None
    f_star: float | None         # continuous optimum of F for a fixed budget
    f_star_capped: bool | None   # F* above max_finetune_seeds (sigma_p^2 about 0): shown as the maximum
    reason: str | None = None

    @property
    def words(self) -> str:
        head = f"{name(self.metric)}, to detect {self.effect:g} point{'s' * (self.effect != 1)} with power {self.power:g}: "
        if self.pretrain_seeds is None:
            return head + f"no plan: {self.reason}"
        plan = (f"{self.pretrain_seeds} pretraining seeds x {self.finetune_seeds} fine-tune seeds per recipe "
                f"({self.cost:.3g} device-hours for {self.recipes} recipes, power {self.achieved_power:.2f})")
        if self.reason is not None:
            return head + f"{self.reason}; at most {plan}"
        return head + plan

    @property
    def lines(self) -> list[str]:
        """The arithmetic of the plan, one step a line, for a report."""
        if self.sd_p is None or self.sd_difference is None:
            return [self.words]
        P, F, R = self.pretrain_seeds, self.finetune_seeds, self.recipes
        per = f"{self.cost_pretrain:.3g} + {self.trials} x {self.cost_trial:.3g} + {F} x {self.cost_finetune:.3g}"
        cap = f" (capped at {self.max_finetune_seeds}: sigma_p^2 about 0)" if self.f_star_capped else ""
        return [
            f"planned for a difference of {self.effect:g} point{'s' * (self.effect != 1)} (the stated effect, not an "
            f"observed one), "
            f"power {self.power:g}, family-wise alpha {self.alpha:g}",
            f"sigma_p = {self.sd_p:.3g}, sigma_f = {self.sd_f:.3g} (estimated)",
            f"Var(difference) = 2 (sigma_p^2 / P + sigma_f^2 / (P F)) = 2 ({self.sd_p ** 2:.3g} / {P} + "
            f"{self.sd_f ** 2:.3g} / ({P} x {F})) = {self.sd_difference ** 2:.3g}; sd {self.sd_difference:.3g}",
            f"critical value: Dunnett two-sided, {R - 1} comparison{'s' * (R > 2)} with the reference, "
            f"{self.df} df = {R} x ({P} - 1): {self.critical_value:.3f}",
            f"power: noncentral t, delta = {self.effect:g} / {self.sd_difference:.3g} = "
            f"{self.effect / self.sd_difference:.3g}: {self.achieved_power:.3f} (asked {self.power:g})",
            f"cost: {R} recipes x {P} backbones x ({per}) = {R} x {P} x {self.cost_per_backbone:.3g} = "
            f"{self.cost:.3g} device-hours",
            f"continuous optimum F* = sqrt(((cost_pretrain + trials cost_trial) / cost_finetune) "
            f"(sigma_f^2 / sigma_p^2)) = {self.f_star:.3g}{cap}",
        ] + ([f"not reached: {self.reason}"] if self.reason is not None else [])


def seed_plan(vc: VarianceComponents, recipes: int, cost_pretrain: float, cost_finetune: float,
              cost_trial: float = 0.0, trials: int = 0, effect: float = 1.0, power: float = 0.8,
              alpha: float = 0.05, max_pretrain_seeds: int = 50, max_finetune_seeds: int = 50) -> SeedPlan:
    """The pretraining seeds P (>= 2) and fine-tune seeds F per recipe of least total cost
    R P (cost_pretrain + trials cost_trial + F cost_finetune) that give ``power`` to detect a
    difference ``effect`` between a recipe and the reference at family-wise ``alpha``.

    Compared on backbone means, Var(difference) = 2 (sigma_p^2 / P + sigma_f^2 / (P F)) with the
    components of ``vc``; the test is Dunnett's, two-sided, R - 1 comparisons at R (P - 1) df
    (:func:`dunnett_critical_value`); power = 1 - nct.cdf(c, df, d) + nct.cdf(-c, df, d),
    d = effect / sd(difference). Exhaustive over integer P <= max_pretrain_seeds, F <=
    max_finetune_seeds (power grows with F, so each P takes its least F; a P whose power at the
    most fine-tunes falls short even with Student's critical value is skipped; P stops once even
    F = 1 costs more than the best plan); ties in cost keep the fewer pretraining seeds. Also
    F* = sqrt(((cost_pretrain + trials cost_trial) / cost_finetune) (sigma_f^2 / sigma_p^2)), the
    continuous optimum of the classic nested allocation, capped at max_finetune_seeds.
    Plans for the stated ``effect`` only: it takes no observed differences."""
    if not effect > 0:
        raise ValueError(f"effect must be > 0 points, got {effect!r}")
    if not (0 < power < 1 and 0 < alpha < 1):
        raise ValueError(f"power and alpha must be in (0, 1), got {power!r}, {alpha!r}")
    if cost_pretrain < 0 or cost_trial < 0 or not cost_finetune > 0 or trials < 0:
        raise ValueError("costs must be >= 0 (cost_finetune > 0) and trials >= 0")
    if max_pretrain_seeds < 2 or max_finetune_seeds < 1:
        raise ValueError("max_pretrain_seeds must be >= 2 and max_finetune_seeds >= 1")
    base = dict(metric=vc.metric, recipes=recipes, effect=float(effect), power=float(power), alpha=float(alpha),
                sd_p=vc.sd_p, sd_f=vc.sd_f, cost_pretrain=float(cost_pretrain), cost_finetune=float(cost_finetune),
                cost_trial=float(cost_trial), trials=int(trials), max_pretrain_seeds=max_pretrain_seeds,
                max_finetune_seeds=max_finetune_seeds)
    none = dict(pretrain_seeds=None, finetune_seeds=None, cost=None, cost_per_backbone=None, sd_difference=None,
                critical_value=None, df=None, achieved_power=None, f_star=None, f_star_capped=None)
    if vc.reason is not None:
        return SeedPlan(**base, **none, reason=f"the noise components were not estimated ({vc.reason})")
    if recipes < 2:
        return SeedPlan(**base, **none, reason="needs a reference and at least one other recipe")
    sp2, sf2 = vc.sd_p ** 2, vc.sd_f ** 2
    if sp2 == 0 and sf2 == 0:
        return SeedPlan(**base, **none, reason="no seed noise was measured (both sds are 0): nothing to plan")
    fixed = cost_pretrain + trials * cost_trial
    if sp2 <= 1e-12 * sf2:
        f_star, capped = float(max_finetune_seeds), True
    else:
        f_star = math.sqrt(fixed / cost_finetune * sf2 / sp2)
        capped = f_star > max_finetune_seeds
        f_star = min(f_star, float(max_finetune_seeds))
    Fs = np.arange(1, max_finetune_seeds + 1)
    best = None  # (cost, P, F, power, crit, df)
    for P in range(2, max_pretrain_seeds + 1):
        if best is not None and recipes * P * (fixed + cost_finetune) > best[0]:
            break
        df = recipes * (P - 1)
        delta = effect / np.sqrt(2 * (sp2 / P + sf2 / (P * Fs)))
        if _power(float(stats.t.isf(alpha / 2, df)), df, delta[-1]) < power:
            continue  # even Student's t, below Dunnett's critical value, lacks the power: skip the cdf
        crit = dunnett_critical_value(recipes - 1, df, alpha)
        pw = _power(crit, df, delta)
        ok = np.flatnonzero(pw >= power)
        if ok.size:
            F = int(Fs[ok[0]])
            cost = recipes * P * (fixed + F * cost_finetune)
            if best is None or cost < best[0]:
                best = (cost, P, F, float(pw[ok[0]]), crit, df)
    reason = None
    if best is None:
        P, F = max_pretrain_seeds, max_finetune_seeds
        df = recipes * (P - 1)
        crit = dunnett_critical_value(recipes - 1, df, alpha)
        pw = float(_power(crit, df, effect / math.sqrt(2 * (sp2 / P + sf2 / (P * F)))))
        best = (recipes * P * (fixed + F * cost_finetune), P, F, pw, crit, df)
        reason = (f"power {power:g} is not reachable within {max_pretrain_seeds} pretraining and "
                  f"{max_finetune_seeds} fine-tune seeds")
    cost, P, F, pw, crit, df = best
    return SeedPlan(**base, pretrain_seeds=P, finetune_seeds=F, cost=float(cost),
                    cost_per_backbone=float(fixed + F * cost_finetune),
                    sd_difference=math.sqrt(2 * (sp2 / P + sf2 / (P * F))), critical_value=float(crit), df=int(df),
                    achieved_power=float(pw), f_star=float(f_star), f_star_capped=bool(capped), reason=reason)


# ---------------------------------------------------------------- what a report writes

Statistic = VarianceComponents | SeedEffect | Comparison | PairDifference | SeedPlan


def record(stat: Statistic) -> dict:
    """A statistic as a report writes it (JSON-ready): its fields, its words (and a plan's lines)."""
    out = asdict(stat) | {"words": stat.words}
    if isinstance(stat, (Comparison, PairDifference)):
        out["beyond_noise"] = stat.beyond_noise
    if isinstance(stat, SeedPlan):
        out["lines"] = stat.lines
    return out

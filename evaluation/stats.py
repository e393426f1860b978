"""Statistics of a backbone comparison study: does a better ImageNet backbone make a better
detector and segmenter?

Pure functions from a table of runs (recipe x seed, metrics in percent) to numbers; no file
I/O, no torch. Every result is a frozen dataclass of numbers (``dataclasses.asdict`` dumps it to
JSON); where something could not be estimated (one seed, too few recipes, no spread) its fields
are ``None`` and it keeps what tells why as data (the seed counts, the constant metric, the
recipes with one seed), as scipy's results keep fields, not prose. Its ``words`` property
derives from those fields the sentence a report can quote; :func:`record` is what a report
writes of it (the fields and the words).

* Seed noise: recipes are compared by paired differences over matched seeds (``ttest_rel``),
  else by Welch's t (``ttest_ind(equal_var=False)``).
* Correlation across recipes, on the recipe means, raw and on log-odds (Kornblith, Shlens, Le,
  CVPR 2019, who find r = 0.96 between ImageNet top-1 and fine-tuned transfer accuracy in
  log-odds); interval by a two-level bootstrap (recipes, then seeds within each recipe); p-value
  by a permutation test over pairings; Holm's step-down correction over the family.
* Probability of improvement P(A > B) with a bootstrap interval (Bouthillier et al., MLSys 2021).

scipy does the estimates and tests; only what it lacks is written here (Holm, the two-level
bootstrap, the pooled within-pair interval of a trick's main effect).
"""
from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields

import numpy as np
from scipy import stats

from evaluation import noise

CONFIDENCE = 0.95
LOGIT_EPS = 1e-6  # p = metric / 100 is clipped into [eps, 1 - eps] before log(p / (1 - p))
NAMES = {"top1": "top-1", "top5": "top-5", "map": "mAP", "map_area": "mAP (area)", "miou": "mIoU",
         "aacc": "aAcc", "macc": "mAcc", "frozen_map": "frozen-backbone mAP", "frozen_miou": "frozen-backbone mIoU",
         "linear_miou": "linear mIoU", "knn_top1": "k-NN top-1", "svm_map": "VOC07 SVM mAP"}
METHOD_NAMES = {"pearson": "Pearson r", "spearman": "Spearman rho", "kendall": "Kendall tau"}
RANK_METHODS = ("spearman", "kendall")
# The metadata of a field a statistic keeps to word itself (why something could not be estimated,
# the range of the pair effects): :func:`record` leaves it out, as the sentence says it.
WORDING = {"wording": True}
# scipy >= 1.15 names its generator argument ``rng``; 1.11-1.14 ``random_state``.
_RNG_KW = "rng" if "rng" in inspect.signature(stats.permutation_test).parameters else "random_state"


@dataclass(frozen=True)
class Run:
    """One seed of one recipe. A metric absent from ``metrics`` means that stage did not run."""
    recipe: str
    seed: int
    metrics: Mapping[str, float]


Table = dict[str, dict[int, Mapping[str, float]]]  # recipe -> seed -> metrics, in table order


def index_runs(runs: Iterable[Run]) -> Table:
    """recipe -> seed -> metrics, recipes in order of first appearance; checks the table."""
    table: Table = {}
    for run in runs:
        seeds = table.setdefault(run.recipe, {})
        if run.seed in seeds:
            raise ValueError(f"duplicate run: recipe {run.recipe!r}, seed {run.seed}")
        for name, value in run.metrics.items():
            if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)):
                raise ValueError(f"recipe {run.recipe!r}, seed {run.seed}: metric {name!r} is {value!r}, "
                                 f"not a finite number")
        seeds[run.seed] = run.metrics
    return table


def values_of(table: Table, recipe: str, metric: str) -> dict[int, float]:
    """seed -> value of ``metric`` for the seeds of ``recipe`` that measured it, by seed."""
    return {s: float(m[metric]) for s, m in sorted(table[recipe].items()) if metric in m}


def name(metric: str) -> str:
    return NAMES.get(metric, metric)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order.

    Sorted ascending, p_(i) is multiplied by (m - i + 1), capped at 1, and made monotone by a
    running maximum, so rejecting where the adjusted p <= alpha controls the family-wise error.
    """
    m = len(pvalues)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


# ---------------------------------------------------------------- formatting


def _num(v: float) -> str:
    return f"{v:.2f}"


def _signed(v: float) -> str:
    return f"{v:+.2f}"


def _interval(lo: float, hi: float) -> str:
    return f"[{_num(lo)}, {_num(hi)}]"


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.2g}"


def _seeds(n: int) -> str:
    return "one seed" if n == 1 else f"{n} seeds"


def _covers_zero(lo: float | None, hi: float | None) -> bool | None:
    return None if lo is None or hi is None else bool(lo <= 0.0 <= hi)


def _no_spread(spread: float, *values: np.ndarray) -> bool:
    """True when ``spread`` is zero up to float rounding of ``values`` (75.1 - 70.0 and 75.2 - 70.1
    differ by 1.4e-14). Metrics in steps of 0.1 make equal seeds common at 2-3 seeds."""
    scale = max([1.0] + [float(np.abs(v).max()) for v in values if np.size(v)])
    return bool(spread <= 1e-9 * scale)


# ---------------------------------------------------------------- 1. summaries


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float | None      # sample standard deviation (ddof=1); None with one seed
    ci_low: float | None   # 95% Student-t interval for the mean; None with one seed or std 0
    ci_high: float | None

    @property
    def words(self) -> str:
        if self.n == 1:
            return f"{_num(self.mean)} (one seed: spread and interval cannot be estimated)"
        if self.ci_low is None:
            return (f"{_num(self.mean)} at each of {self.n} seeds (no spread measured: interval cannot be "
                    f"estimated)")
        return f"{_num(self.mean)} {_interval(self.ci_low, self.ci_high)} (sd {_num(self.std)}, {self.n} seeds)"


def summarize(values: Sequence[float]) -> Summary:
    """Mean, sample std (ddof=1) and the 95% Student-t interval mean +- t(0.975, n-1) s / sqrt(n)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"summarize needs at least one finite value, got {list(values)!r}")
    mean = float(x.mean())
    if x.size == 1:
        return Summary(1, mean, None, None, None)
    std = float(x.std(ddof=1))
    if _no_spread(np.ptp(x), x):  # every seed gave the same value: scipy's interval is NaN
        return Summary(int(x.size), mean, 0.0, None, None)
    lo, hi = stats.t.interval(CONFIDENCE, x.size - 1, loc=mean, scale=std / math.sqrt(x.size))
    return Summary(int(x.size), mean, std, float(lo), float(hi))


def summary_table(runs: Sequence[Run], metrics: Sequence[str]) -> dict[str, dict[str, Summary]]:
    """recipe -> metric -> Summary over its seeds; a metric no seed of a recipe measured is left out."""
    table = index_runs(runs)
    out: dict[str, dict[str, Summary]] = {}
    for recipe in table:
        row = {}
        for metric in metrics:
            vals = values_of(table, recipe, metric)
            if vals:
                row[metric] = summarize(list(vals.values()))
        out[recipe] = row
    return out


# ---------------------------------------------------------------- 2. correlations


def _pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis (broadcasting); NaN where a variable is constant."""
    x, y = np.broadcast_arrays(x, y)
    xm = x - x.mean(-1, keepdims=True)
    ym = y - y.mean(-1, keepdims=True)
    varying = (np.ptp(x, -1) > 0) & (np.ptp(y, -1) > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xm * ym).sum(-1) / np.sqrt((xm * xm).sum(-1) * (ym * ym).sum(-1))
    return np.where(varying, np.clip(r, -1.0, 1.0), np.nan)


def _spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman rho: Pearson r of the ranks (ties get their average rank), as scipy's spearmanr."""
    x, y = np.broadcast_arrays(x, y)
    return _pearson(stats.rankdata(x, axis=-1), stats.rankdata(y, axis=-1))


def _kendall(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-b along the last axis, as scipy's kendalltau (variant 'b')."""
    x, y = np.broadcast_arrays(x, y)
    sx = np.sign(x[..., :, None] - x[..., None, :])
    sy = np.sign(y[..., :, None] - y[..., None, :])
    den = np.sqrt((sx * sx).sum((-2, -1)) * (sy * sy).sum((-2, -1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = (sx * sy).sum((-2, -1)) / den
    return np.where(den > 0, tau, np.nan)


_VECTORIZED = {"pearson": _pearson, "spearman": _spearman, "kendall": _kendall}


def _scipy_estimate(method: str, x: np.ndarray, y: np.ndarray) -> float:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan  # undefined; scipy would warn and return NaN
    if method == "pearson":
        return float(stats.pearsonr(x, y).statistic)
    if method == "spearman":
        return float(stats.spearmanr(x, y).statistic)
    if method == "kendall":
        return float(stats.kendalltau(x, y).statistic)
    raise ValueError(f"unknown correlation method {method!r}; choose from {sorted(_VECTORIZED)}")


def logit(percent: np.ndarray | float, metric: str = "metric") -> np.ndarray:
    """Log-odds of a metric in percent: log(p / (1 - p)), p = metric / 100 clipped into (0, 1)."""
    a = np.asarray(percent, dtype=float)
    if np.any(a < 0) or np.any(a > 100):
        raise ValueError(f"{metric} has values outside [0, 100]; the logit scale needs percentages")
    p = np.clip(a / 100.0, LOGIT_EPS, 1.0 - LOGIT_EPS)
    return np.log(p / (1.0 - p))


@dataclass(frozen=True)
class Correlation:
    x: str
    y: str
    method: str                # 'pearson' | 'spearman' | 'kendall'
    scale: str                 # 'raw' | 'logit' (log-odds of the recipe means)
    n_recipes: int
    estimate: float | None
    ci_low: float | None       # 95% percentile interval, two-level bootstrap
    ci_high: float | None
    p: float | None            # two-sided permutation p-value, |statistic| over pairings
    p_holm: float | None       # Holm-adjusted over every test returned by the same call
    p_exact: bool | None       # True when every pairing was enumerated
    n_boot: int                # resamples drawn
    n_skipped: int             # resamples dropped because a variable was constant in them
    # Why there is no estimate or no interval, besides n_recipes < 3 and n_skipped:
    one_seed: tuple[str, ...] = field(default=(), metadata=WORDING)  # recipes with one seed: no interval
    constant: str | None = field(default=None, metadata=WORDING)     # x or y, the same for every recipe: no estimate

    @property
    def words(self) -> str:
        head = f"{name(self.x)} and {name(self.y)}{', log-odds' if self.scale == 'logit' else ''}: "
        label = METHOD_NAMES[self.method]
        n = self.n_recipes
        if n < 3:
            return head + f"{label} cannot be estimated from {n} recipe{'s' * (n != 1)} (needs at least 3)"
        if self.constant is not None:
            return head + f"{label} is undefined: {name(self.constant)} is the same for every recipe"
        text = head + f"{label} = {_num(self.estimate)}"
        if self.ci_low is not None:
            text += f" {_interval(self.ci_low, self.ci_high)}"
        text += f" over {n} recipes"
        if self.one_seed:
            text += f" (interval cannot be estimated with one seed: {', '.join(self.one_seed)})"
        elif self.ci_low is None:
            text += f" (interval cannot be estimated: {self.n_skipped} of {self.n_boot} resamples degenerate)"
        elif self.n_skipped:
            text += f" ({self.n_skipped} of {self.n_boot} resamples skipped: a variable was constant)"
        return text + f", p {_p(self.p)} (Holm-adjusted {self.p_holm:.2g})"


def _bootstrap_means(xs: list[np.ndarray], ys: list[np.ndarray], n_boot: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two-level bootstrap of recipe means: draw recipes with replacement, then, within every
    drawn recipe, its seeds with replacement (x and y of a seed stay together). Returns the
    (n_boot, n_recipes) arrays of resampled means of x and y."""
    n = len(xs)
    k = np.array([len(v) for v in xs])
    kmax = int(k.max())
    xpad = np.zeros((n, kmax))
    ypad = np.zeros((n, kmax))
    for i, (xv, yv) in enumerate(zip(xs, ys)):
        xpad[i, :len(xv)] = xv
        ypad[i, :len(yv)] = yv
    rec = rng.integers(n, size=(n_boot, n))
    kd = k[rec][..., None]                                          # seeds of each drawn recipe
    seed = np.floor(rng.random((n_boot, n, kmax)) * kd).astype(int)  # < kd
    used = np.arange(kmax) < kd                                       # first kd draws count
    gx = np.where(used, xpad[rec[..., None], seed], 0.0).sum(-1) / kd[..., 0]
    gy = np.where(used, ypad[rec[..., None], seed], 0.0).sum(-1) / kd[..., 0]
    return gx, gy


def _permutation_p(method: str, x: np.ndarray, y: np.ndarray, n_perm: int,
                   rng: np.random.Generator) -> tuple[float, bool]:
    """Two-sided p: the share of pairings of x with y whose |statistic| >= the observed one.
    scipy enumerates all n! pairings when n! <= n_perm (exact), else draws n_perm at random."""
    stat = _VECTORIZED[method]
    res = stats.permutation_test((x,), lambda a, axis=-1: np.abs(stat(np.moveaxis(a, axis, -1), y)),
                                 permutation_type="pairings", vectorized=True, n_resamples=n_perm,
                                 alternative="greater", **{_RNG_KW: rng})
    return float(res.pvalue), math.factorial(len(x)) <= n_perm


def correlations(runs: Sequence[Run], x: str = "top1", ys: Sequence[str] = ("map", "miou"),
                 methods: Sequence[str] = ("pearson", "spearman", "kendall"),
                 scales: Sequence[str] = ("raw", "logit"), n_boot: int = 2000, n_perm: int = 9999,
                 seed: int = 0) -> list[Correlation]:
    """Correlation between ``x`` and each of ``ys`` across recipes, on the recipe means.

    * Recipes: those with at least one seed that measured both ``x`` and ``y``; a recipe's means
      are taken over those seeds, so x and y describe the same backbones.
    * Estimate: scipy's pearsonr / spearmanr / kendalltau (tau-b) on the recipe means. On the
      ``'logit'`` scale the means are turned into log-odds first (Kornblith et al. 2019). A rank
      correlation does not change under that monotone map, so spearman and kendall are computed
      once, on the first of ``scales``: no test enters the Holm family twice.
    * Interval: 95% percentile interval of a two-level bootstrap (recipes with replacement, then
      seeds within each recipe with replacement, recipe means recomputed). Resamples where a
      variable is constant are dropped and counted (``n_skipped``); with more than half dropped
      there is no interval. Needs 2+ seeds in every recipe: with one seed the seed noise is
      unknown and the interval is None.
    * p: ``permutation_test(permutation_type='pairings')`` on the recipe means with |statistic|,
      exact for n! <= ``n_perm`` (n <= 7 by default), else ``n_perm`` random pairings.
    * ``p_holm``: Holm over every p returned by this call.
    Fewer than 3 recipes: no estimate, interval or p. The same ``seed`` gives the same numbers;
    the same bootstrap draws serve every method and scale of one y.
    """
    for method in methods:
        if method not in _VECTORIZED:
            raise ValueError(f"unknown correlation method {method!r}; choose from {sorted(_VECTORIZED)}")
    for scale in scales:
        if scale not in ("raw", "logit"):
            raise ValueError(f"unknown scale {scale!r}; choose 'raw' or 'logit'")
    table = index_runs(runs)
    rows: list[dict] = []
    for y in ys:
        paired = {r: [(m[x], m[y]) for _, m in sorted(table[r].items()) if x in m and y in m] for r in table}
        recipes = [r for r, v in paired.items() if v]
        xs = [np.array([a for a, _ in paired[r]]) for r in recipes]
        yv = [np.array([b for _, b in paired[r]]) for r in recipes]
        n = len(recipes)
        mx = np.array([v.mean() for v in xs])
        my = np.array([v.mean() for v in yv])
        one_seed = [r for r, v in zip(recipes, xs) if len(v) < 2]
        boot = None
        if n >= 3 and not one_seed:
            boot = _bootstrap_means(xs, yv, n_boot, np.random.default_rng(seed))
        for scale in scales:
            for method in methods:
                if method in RANK_METHODS and scale != scales[0]:
                    continue
                row = dict(x=x, y=y, method=method, scale=scale, n_recipes=n, estimate=None, ci_low=None,
                           ci_high=None, p=None, p_exact=None, n_boot=0, n_skipped=0, one_seed=tuple(one_seed))
                rows.append(row)
                if n < 3:
                    continue
                tx, ty = (logit(mx, name(x)), logit(my, name(y))) if scale == "logit" else (mx, my)
                est = _scipy_estimate(method, tx, ty)
                if not math.isfinite(est):
                    row["constant"] = x if np.ptp(tx) == 0 else y
                    continue
                row["estimate"] = est
                row["p"], row["p_exact"] = _permutation_p(method, tx, ty, n_perm, np.random.default_rng(seed))
                if boot is None:
                    continue
                bx, by = (logit(boot[0], name(x)), logit(boot[1], name(y))) if scale == "logit" else boot
                draws = _VECTORIZED[method](bx, by)
                ok = draws[np.isfinite(draws)]
                row["n_boot"], row["n_skipped"] = n_boot, int(n_boot - ok.size)
                if ok.size >= n_boot / 2:
                    lo, hi = np.quantile(ok, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
                    row["ci_low"], row["ci_high"] = float(lo), float(hi)
    tested = [i for i, r in enumerate(rows) if r["p"] is not None]
    adjusted = dict(zip(tested, holm([rows[i]["p"] for i in tested])))
    return [Correlation(**r, p_holm=adjusted.get(i)) for i, r in enumerate(rows)]


# ---------------------------------------------------------------- 3. effects against a reference


@dataclass(frozen=True)
class Difference:
    """Difference of means a - b with its 95% interval and how it was obtained."""
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    method: str | None     # 'paired' (ttest_rel) | 'welch' (ttest_ind, equal_var=False) | 'dunnett' | 'tukey' | None
    n_a: int
    n_b: int
    df: int | None = None  # pooled: the degrees of freedom of the seed variance pooled over the recipes


def difference(a: Mapping[int, float], b: Mapping[int, float]) -> Difference:
    """mean(a) - mean(b) over seed -> value maps. Paired by seed (ttest_rel) when both have the
    same seeds, at least 2; else Welch's t when both have 2+ seeds; else no interval. No interval
    either (``method`` set, ``ci_low`` None) when the seeds show no spread at all: every paired
    difference equal, or, for Welch, every seed of each recipe equal."""
    if not a or not b:
        return Difference(None, None, None, None, len(a), len(b))
    xa = np.array([a[s] for s in sorted(a)])
    xb = np.array([b[s] for s in sorted(b)])
    diff = float(xa.mean() - xb.mean())
    if sorted(a) == sorted(b) and len(a) >= 2:
        method, spread = "paired", np.ptp(xa - xb)
    elif len(a) >= 2 and len(b) >= 2:
        method, spread = "welch", max(np.ptp(xa), np.ptp(xb))
    else:
        return Difference(diff, None, None, None, len(a), len(b))
    if _no_spread(spread, xa, xb):
        # No seed-to-seed spread was measured (scipy's t interval would be NaN): a zero-width
        # interval would call any difference real, so there is none. ``method`` stays set.
        return Difference(diff, None, None, method, len(a), len(b))
    test = stats.ttest_rel(xa, xb) if method == "paired" else stats.ttest_ind(xa, xb, equal_var=False)
    ci = test.confidence_interval(CONFIDENCE)
    return Difference(diff, float(ci.low), float(ci.high), method, len(a), len(b))


def _how(d: Difference) -> str:
    if d.method is None:
        return f"cannot be estimated with one seed ({d.n_a} vs {d.n_b})"
    if d.ci_low is None:
        same = (f"the {d.n_a} paired differences are all equal" if d.method == "paired"
                else f"each recipe gave the same value at every seed ({d.n_a} vs {d.n_b} seeds)")
        return f"cannot be estimated: {same}, so no seed-to-seed spread was measured; run more seeds"
    if d.method == "paired":
        return f"paired over {d.n_a} seeds"
    if d.method in POOLED:
        return f"{POOLED[d.method]}, {d.n_a} vs {d.n_b} backbones, seed variance pooled over the recipes, {d.df} df"
    return f"Welch, {d.n_a} vs {d.n_b} seeds"


# The family-wise tests on backbone means with the seed variance pooled over every recipe
# (:mod:`evaluation.noise`): what a "beyond noise" verdict rests on when a study has them.
POOLED = {"dunnett": "Dunnett vs the reference (scipy.stats.dunnett), 95% family-wise",
          "tukey": "Tukey HSD over all pairs (scipy.stats.tukey_hsd), 95% family-wise"}


@dataclass(frozen=True)
class Effect:
    recipe: str
    reference: str
    metric: str
    diff: float | None         # mean(recipe) - mean(reference), points
    ci_low: float | None
    ci_high: float | None
    method: str | None         # 'paired' | 'welch' | None
    n: int                     # seeds of the recipe (the pairs when paired)
    n_reference: int           # seeds of the reference
    within_noise: bool | None  # True when the interval covers 0; None without an interval
    df: int | None = None      # pooled methods: the degrees of freedom of the pooled seed variance
    pvalue: float | None = None  # pooled methods: the family-wise adjusted p-value

    @property
    def words(self) -> str:
        d = Difference(self.diff, self.ci_low, self.ci_high, self.method, self.n, self.n_reference, self.df)
        head = f"{self.recipe} vs {self.reference}: {name(self.metric)}"
        if d.diff is None:
            missing = " and ".join(r for r, n in ((self.recipe, d.n_a), (self.reference, d.n_b)) if n == 0)
            return f"{head} cannot be compared: not measured for {missing}"
        if d.ci_low is None:
            return f"{head} {_signed(d.diff)} points; interval {_how(d)}"
        verdict = "within noise" if self.within_noise else "beyond seed noise"
        p = f", adjusted p {_p(self.pvalue)}" if self.pvalue is not None else ""
        return f"{head} {_signed(d.diff)} {_interval(d.ci_low, d.ci_high)} points, {verdict} ({_how(d)}{p})"


def _against(runs: Sequence[Run], reference: str, metrics: Sequence[str]) -> list[tuple]:
    """(metric, recipe, its values by seed, the reference's) for every other recipe and metric;
    an unknown reference is a ValueError naming the known recipes."""
    table = index_runs(runs)
    if reference not in table:
        raise ValueError(f"unknown reference recipe {reference!r}; known recipes: {', '.join(table)}")
    return [(metric, recipe, values_of(table, recipe, metric), values_of(table, reference, metric))
            for metric in metrics for recipe in table if recipe != reference]


def effects(runs: Sequence[Run], reference: str, metrics: Sequence[str]) -> list[Effect]:
    """Every other recipe against ``reference`` on each metric: difference of means with its 95%
    interval, paired by seed when both recipes have the same seeds (2+), else Welch (2+ seeds
    each), else no interval."""
    out = []
    for metric, recipe, mine, ref in _against(runs, reference, metrics):
        d = difference(mine, ref)
        out.append(Effect(recipe, reference, metric, d.diff, d.ci_low, d.ci_high, d.method, d.n_a, d.n_b,
                          _covers_zero(d.ci_low, d.ci_high)))
    return out


def _backbone_values(table: Table, metric: str) -> dict[str, list[float]]:
    """recipe -> its backbones' values of ``metric`` by seed, for the recipes that measured it."""
    out = {r: list(values_of(table, r, metric).values()) for r in table}
    return {r: v for r, v in out.items() if v}


def pooled_effects(runs: Sequence[Run], reference: str, metrics: Sequence[str], seed: int = 0) -> list[Effect]:
    """Every other recipe against ``reference`` on each metric by Dunnett's many-to-one test on the
    backbone values (a backbone's downstream value is the mean of its fine-tunes), the seed
    variance pooled over every recipe that measured the metric (:func:`evaluation.noise.comparisons`,
    seeded). Where the pooled test cannot run (fewer than one pooled degree of freedom) the effect
    is the paired/Welch one of :func:`effects`, which says why it has no interval."""
    table = index_runs(runs)
    if reference not in table:
        raise ValueError(f"unknown reference recipe {reference!r}; known recipes: {', '.join(table)}")
    fallback = {(e.metric, e.recipe): e for e in effects(runs, reference, metrics)}
    out = []
    for metric in metrics:
        means = _backbone_values(table, metric)
        done = {}
        if reference in means and len(means) > 1:
            done = {c.recipe: c for c in noise.comparisons(means, reference, metric, seed=seed) if c.reason is None}
        for recipe in table:
            if recipe == reference:
                continue
            c = done.get(recipe)
            if c is None:
                out.append(fallback[(metric, recipe)])
                continue
            out.append(Effect(recipe, reference, metric, c.estimate, c.low, c.high, "dunnett", c.n, c.n_reference,
                              _covers_zero(c.low, c.high), c.df, c.pvalue))
    return out


def pooled_pairs(runs: Sequence[Run], metrics: Sequence[str]) -> dict[str, dict[tuple[str, str], Difference]]:
    """metric -> (a, b) -> mean(a) - mean(b) with its Tukey HSD interval over every recipe that
    measured the metric (both orders), where the pooled test can run."""
    table = index_runs(runs)
    out: dict[str, dict[tuple[str, str], Difference]] = {}
    for metric in metrics:
        means = _backbone_values(table, metric)
        if len(means) < 2:
            continue
        for d in noise.all_pairs(means, metric):
            if d.reason is not None:
                continue
            pairs = out.setdefault(metric, {})
            pairs[(d.a, d.b)] = Difference(d.estimate, d.low, d.high, "tukey", d.n_a, d.n_b, d.df)
            pairs[(d.b, d.a)] = Difference(-d.estimate, -d.high, -d.low, "tukey", d.n_b, d.n_a, d.df)
    return out


# ---------------------------------------------------------------- 4. rank inversions


@dataclass(frozen=True)
class Inversion:
    x: str
    y: str
    better: str                # the recipe ahead on x (it is behind on y)
    worse: str
    dx: float                  # mean(better) - mean(worse) on x (> 0)
    dx_low: float | None
    dx_high: float | None
    dy: float                  # mean(better) - mean(worse) on y (< 0)
    dy_low: float | None
    dy_high: float | None
    method: str | None         # pairing of the x difference: 'paired' | 'welch' | None
    real: bool | None          # both intervals exclude 0; False if either covers 0; None otherwise
    # How each difference was estimated (what says why an interval is missing): the seeds of
    # (better, worse) that measured x, and the y difference's pairing and seeds.
    x_seeds: tuple[int, int] = field(metadata=WORDING)
    y_method: str | None = field(metadata=WORDING)
    y_seeds: tuple[int, int] = field(metadata=WORDING)
    x_df: int | None = None    # pooled (Tukey) intervals: their degrees of freedom
    y_df: int | None = None

    @property
    def words(self) -> str:
        dx = Difference(self.dx, self.dx_low, self.dx_high, self.method, *self.x_seeds, self.x_df)
        dy = Difference(self.dy, self.dy_low, self.dy_high, self.y_method, *self.y_seeds, self.y_df)
        x, y = self.x, self.y
        words = (f"{self.better} beats {self.worse} on {name(x)} ({_with_ci(dx)}) but loses on {name(y)} "
                 f"({_with_ci(dy)}): ")
        if self.real:
            return words + f"a real inversion ({_how(dx)})"
        if self.real is False:
            covers = ((x, _covers_zero(dx.ci_low, dx.ci_high)), (y, _covers_zero(dy.ci_low, dy.ci_high)))
            return words + f"within noise on {' and '.join(name(m) for m, c in covers if c)}"
        m, d = (x, dx) if dx.ci_low is None else (y, dy)
        return words + f"cannot tell, the {name(m)} interval {_how(d)}"


def _with_ci(d: Difference) -> str:
    return _signed(d.diff) + (f" {_interval(d.ci_low, d.ci_high)}" if d.ci_low is not None else "")


def rank_inversions(runs: Sequence[Run], x: str = "top1", ys: Sequence[str] = ("map", "miou"),
                    pooled: Mapping[str, Mapping[tuple[str, str], Difference]] | None = None) -> list[Inversion]:
    """Pairs of recipes whose order by mean ``x`` and by mean ``y`` disagree (ties are no
    inversion). Each difference is tested with its pooled Tukey HSD interval where ``pooled``
    (:func:`pooled_pairs`) has it, else as in ``effects`` (paired by seed, else Welch)."""
    table = index_runs(runs)
    pooled = pooled or {}

    def diff(a: str, b: str, metric: str) -> Difference:
        got = pooled.get(metric, {}).get((a, b))
        return got if got is not None else difference(values_of(table, a, metric), values_of(table, b, metric))

    out = []
    for y in ys:
        recipes = [r for r in table if values_of(table, r, x) and values_of(table, r, y)]
        for a, b in itertools.combinations(recipes, 2):
            dx, dy = diff(a, b, x), diff(a, b, y)
            if dx.diff * dy.diff >= 0:
                continue
            if dx.diff < 0:
                a, b = b, a
                dx, dy = diff(a, b, x), diff(a, b, y)
            cx, cy = _covers_zero(dx.ci_low, dx.ci_high), _covers_zero(dy.ci_low, dy.ci_high)
            real = False if (cx or cy) else (None if cx is None or cy is None else True)
            out.append(Inversion(x, y, a, b, dx.diff, dx.ci_low, dx.ci_high, dy.diff, dy.ci_low, dy.ci_high,
                                 dx.method, real, (dx.n_a, dx.n_b), dy.method, (dy.n_a, dy.n_b), dx.df, dy.df))
    return out


# ---------------------------------------------------------------- 5. trick main effects


@dataclass(frozen=True)
class TrickEffect:
    trick: str
    metric: str
    n_pairs: int               # pairs of recipes differing by exactly this trick (with common seeds)
    n_diffs: int               # per-pair-seed differences
    effect: float | None       # mean over pairs of the pair's mean (with - without) difference
    ci_low: float | None
    ci_high: float | None
    method: str | None         # 'pooled-t' | 'pairs-t' | None
    within_noise: bool | None
    pairs: str                 # the matched pairs, "with vs without; ..."
    n_matched: int = field(metadata=WORDING)   # pairs matched, with or without a common seed
    pair_low: float | None = field(default=None, metadata=WORDING)   # the smallest pair effect
    pair_high: float | None = field(default=None, metadata=WORDING)  # the largest

    @property
    def words(self) -> str:
        head = f"trick {self.trick!r} on {name(self.metric)}"
        P, N = self.n_pairs, self.n_diffs
        if P == 0:
            return head + ": " + ("no two recipes differ by exactly this trick" if self.n_matched == 0
                                  else f"{self.n_matched} matched pair(s) share no seed that measured it")
        if self.method is None:
            return (f"{head}: {_signed(self.effect)} points from one pair ({self.pairs}); "
                    f"interval cannot be estimated with one seed and one pair")
        how = (f"{P} pair{'s' * (P > 1)}, {N} paired seeds, pooled within-pair t" if self.method == "pooled-t"
               else f"{P} pairs with one seed each, t over pairs")
        if self.ci_low is None:
            return (f"{head}: {_signed(self.effect)} points ({how}); interval cannot be estimated: "
                    + ("the differences show no seed-to-seed spread" if self.method == "pooled-t"
                       else "the pair effects are all equal") + "; run more seeds")
        words = (f"{head}: {_signed(self.effect)} {_interval(self.ci_low, self.ci_high)} points, "
                 f"{'within noise' if self.within_noise else 'beyond seed noise'} ({how})")
        if P >= 2:
            words += f"; pair effects {_signed(self.pair_low)} to {_signed(self.pair_high)}"
        return words


def trick_effects(runs: Sequence[Run], tricks: Mapping[str, Iterable[str]], metrics: Sequence[str],
                  factors: Mapping[str, frozenset[str]] | None = None) -> list[TrickEffect]:
    """Main effect of each factor (a trick, a variant level, a bundle of tricks) on each metric,
    from the recipes whose sets differ by exactly that factor: a 2^k factorial, leave-one-out,
    one-at-a-time or cumulative design alike.

    ``tricks`` maps a recipe to its set of names (recipes of the table not in it are ignored).
    ``factors`` maps a factor to the names a recipe has when it is on (its members; by default
    every name that occurs is a factor of itself); the factors are taken in name order. For
    a factor F with members M, every recipe R with none of M is matched with the recipe R + M
    (a bundle needs all of its members added at once); within a pair the difference (with -
    without) is taken per common seed that measured the metric, and the pair's effect is its
    mean. The main effect is the mean over pairs (the textbook average of the simple effects).
    For one factor every recipe sits in at most one pair, so the pairs are independent.

    Interval, a t interval because a bootstrap of 2-5 seeds has too few distinct resamples to
    cover well:
    * ``'pooled-t'`` when some pair has 2+ seeds: the seed noise is the within-pair variance of
      the differences, pooled over pairs (df = sum of n_p - 1), and
      Var(effect) = s^2 / P^2 * sum(1 / n_p): the fixed-effects contrast of a factorial ANOVA.
      It asks whether the trick moves the metric beyond seed noise in these contexts.
    * ``'pairs-t'`` with one seed per pair but 2+ pairs: a t interval on the pair effects
      (df = P - 1), whose spread stands in for the noise (it includes any interaction, so it is
      conservative).
    * One pair with one seed, or differences with no spread at all: no interval.
    """
    table = index_runs(runs)
    sets = {r: frozenset(tricks[r]) for r in table if r in tricks}
    by_set: dict[frozenset, str] = {}
    for r, s in sets.items():
        if s in by_set:
            raise ValueError(f"recipes {by_set[s]!r} and {r!r} have the same tricks {sorted(s)}")
        by_set[s] = r
    if factors is None:
        factors = {n: frozenset({n}) for n in set().union(*sets.values())}
    out = []
    for metric in metrics:
        for trick in sorted(factors):
            members = frozenset(factors[trick])
            matched = [(by_set[s | members], r) for r, s in sets.items() if not s & members and s | members in by_set]
            diffs: list[np.ndarray] = []
            used = []
            for with_, without in matched:
                a, b = values_of(table, with_, metric), values_of(table, without, metric)
                common = sorted(set(a) & set(b))
                if common:
                    diffs.append(np.array([a[s] - b[s] for s in common]))
                    used.append(f"{with_} vs {without}")
            out.append(_trick_effect(trick, metric, diffs, used, len(matched)))
    return out


def _trick_effect(trick: str, metric: str, diffs: list[np.ndarray], used: list[str], n_matched: int) -> TrickEffect:
    P, N = len(diffs), sum(len(d) for d in diffs)
    if P == 0:
        return TrickEffect(trick, metric, 0, 0, None, None, None, None, None, "", n_matched)
    pair_means = np.array([d.mean() for d in diffs])
    effect = float(pair_means.mean())
    known = dict(pairs="; ".join(used), n_matched=n_matched, pair_low=float(pair_means.min()),
                 pair_high=float(pair_means.max()))
    df = N - P
    if df > 0:
        s2 = sum(float(((d - d.mean()) ** 2).sum()) for d in diffs) / df
        se = math.sqrt(s2 / P ** 2 * sum(1.0 / len(d) for d in diffs))
        method = "pooled-t"
    elif P >= 2:
        df, se = P - 1, float(pair_means.std(ddof=1)) / math.sqrt(P)
        method = "pairs-t"
    else:  # one pair with one seed
        return TrickEffect(trick, metric, 1, N, effect, None, None, None, None, **known)
    if _no_spread(se, *diffs):
        return TrickEffect(trick, metric, P, N, effect, None, None, method, None, **known)
    half = float(stats.t.ppf((1 + CONFIDENCE) / 2, df)) * se
    lo, hi = effect - half, effect + half
    return TrickEffect(trick, metric, P, N, effect, lo, hi, method, _covers_zero(lo, hi), **known)


# ---------------------------------------------------------------- 6. probability of improvement


@dataclass(frozen=True)
class Improvement:
    recipe: str
    reference: str
    metric: str
    p_improve: float | None    # P(a run of recipe > a run of reference), ties count 1/2
    ci_low: float | None       # 95% percentile bootstrap interval
    ci_high: float | None
    method: str | None         # 'paired' (seeds resampled together) | 'independent' | None
    n: int
    n_reference: int

    @property
    def words(self) -> str:
        head = f"{self.recipe} vs {self.reference} on {name(self.metric)}"
        if self.p_improve is None:
            return f"{head}: not measured for both"
        text = f"{head}: P({self.recipe} > {self.reference}) = {_num(self.p_improve)}"
        if self.ci_low is None:
            return f"{text}; interval cannot be estimated with one seed"
        how = f"paired over {self.n} seeds" if self.method == "paired" else f"{self.n} vs {self.n_reference} seeds"
        if self.ci_low == self.ci_high:
            how += "; every resample agreed, so with few seeds this interval is optimistic"
        return f"{text} {_interval(self.ci_low, self.ci_high)} ({how})"


def _p_greater(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    a, b = np.moveaxis(a, axis, -1), np.moveaxis(b, axis, -1)
    d = a[..., :, None] - b[..., None, :]
    return ((d > 0) + 0.5 * (d == 0)).mean((-2, -1))


def improvement_probabilities(runs: Sequence[Run], reference: str, metrics: Sequence[str],
                              n_boot: int = 2000, seed: int = 0) -> list[Improvement]:
    """Probability of improvement P(recipe > reference) per metric (Bouthillier et al., MLSys
    2021): the Mann-Whitney U / (n m) over every pair of a recipe's seed and a reference seed
    (scipy's ``mannwhitneyu``), with a 95% percentile interval from ``scipy.stats.bootstrap``,
    seeds resampled together when both recipes have the same seeds, else independently. Needs
    2+ seeds each for an interval. Above 0.5 the recipe tends to win; an interval that excludes
    0.5 says so beyond seed noise. With 3-5 seeds the percentile interval is coarse: a recipe
    whose every run beats every reference run gets [1, 1], and the words then say so."""
    out = []
    for metric, recipe, mine, ref in _against(runs, reference, metrics):
        if not mine or not ref:
            out.append(Improvement(recipe, reference, metric, None, None, None, None, len(mine), len(ref)))
            continue
        a, b = np.array(list(mine.values())), np.array(list(ref.values()))
        p = float(stats.mannwhitneyu(a, b).statistic) / (a.size * b.size)
        if a.size < 2 or b.size < 2:
            out.append(Improvement(recipe, reference, metric, p, None, None, None, a.size, b.size))
            continue
        paired = list(mine) == list(ref)
        res = stats.bootstrap((a, b), _p_greater, n_resamples=n_boot, vectorized=True, paired=paired,
                              method="percentile", confidence_level=CONFIDENCE,
                              **{_RNG_KW: np.random.default_rng(seed)})
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        out.append(Improvement(recipe, reference, metric, p, lo, hi, "paired" if paired else "independent",
                               a.size, b.size))
    return out


# ---------------------------------------------------------------- 7. does a cheap protocol rank like fine-tuning?

MIN_AGREEMENT_RECIPES = 5   # fewer recipes: a rank correlation between two protocols is not estimated
TOP_K = 3


@dataclass(frozen=True)
class Agreement:
    """How a cheap protocol's metric (``cheap``: a frozen backbone, a probe) ranks the recipes
    against full fine-tuning's (``finetuned``), on recipe means over backbones that have both.
    ``correlations``: Spearman and Kendall with :func:`correlations`' two-level bootstrap
    intervals and permutation p (Holm over the call's family); none below
    ``MIN_AGREEMENT_RECIPES`` recipes. ``top_k``: how many of the best k recipes by fine-tuning
    are among the best k by the cheap metric. ``ranks``: (recipe, rank by fine-tuning, rank by the
    cheap metric), 1 = best, ties share the lower rank."""
    finetuned: str
    cheap: str
    n_recipes: int
    correlations: tuple[Correlation, ...]
    k: int
    top_k: int | None
    ranks: tuple[tuple[str, int, int], ...]

    @property
    def moved(self) -> tuple[tuple[str, int, int], ...]:
        return tuple(r for r in self.ranks if r[1] != r[2])

    @property
    def words(self) -> str:
        head = f"{name(self.cheap)} against fine-tuned {name(self.finetuned)}: "
        if self.n_recipes < MIN_AGREEMENT_RECIPES:
            return head + (f"not estimable from {self.n_recipes} recipe{'s' * (self.n_recipes != 1)} with both (a "
                           f"rank correlation needs at least {MIN_AGREEMENT_RECIPES})")
        parts = []
        for c in self.correlations:
            text = f"{METHOD_NAMES[c.method]} {_num(c.estimate)}" if c.estimate is not None else \
                f"{METHOD_NAMES[c.method]} undefined ({name(c.constant or '')} constant)"
            if c.ci_low is not None:
                text += f" {_interval(c.ci_low, c.ci_high)}"
                if c.p_holm is not None:
                    text += f" (Holm-adjusted p {c.p_holm:.2g})"
            elif c.estimate is not None:
                text += " (interval cannot be estimated" + (f": one seed in {', '.join(c.one_seed)}" if c.one_seed
                                                             else "") + ")"
            parts.append(text)
        moved = ", ".join(f"{r} {a}->{b}" for r, a, b in self.moved) or "none"
        return (head + "; ".join(parts) + f" over {self.n_recipes} recipes; top-{self.k} shared {self.top_k} of "
                f"{self.k}; rank changes (fine-tuned->cheap): {moved}")


def protocol_agreement(runs: Sequence[Run], finetuned: str, cheap: Sequence[str], n_boot: int = 2000,
                       seed: int = 0) -> list[Agreement]:
    """For each of ``cheap`` (a metric of another protocol, e.g. ``knn_top1``), how it ranks the
    recipes against ``finetuned`` (``map``, ``miou``). One Holm family per call: the rank
    correlations of the cheap metrics with at least ``MIN_AGREEMENT_RECIPES`` recipes."""
    table = index_runs(runs)
    means: dict[str, dict[str, float]] = {}
    for c in cheap:
        both = {r: [m for _, m in sorted(table[r].items()) if finetuned in m and c in m] for r in table}
        means[c] = {r: float(np.mean([m[finetuned] for m in v])) for r, v in both.items() if v}
    estimable = [c for c in cheap if len(means[c]) >= MIN_AGREEMENT_RECIPES]
    corrs = correlations(runs, x=finetuned, ys=estimable, methods=RANK_METHODS, scales=("raw",), n_boot=n_boot,
                         seed=seed) if estimable else []
    out = []
    for c in cheap:
        recipes = list(means[c])
        ft = np.array([means[c][r] for r in recipes])
        ch = np.array([float(np.mean([m[c] for _, m in sorted(table[r].items()) if finetuned in m and c in m]))
                       for r in recipes])
        rank_ft = stats.rankdata(-ft, method="min").astype(int) if recipes else []
        rank_ch = stats.rankdata(-ch, method="min").astype(int) if recipes else []
        k = min(TOP_K, max(len(recipes) - 1, 1))
        top = None
        if len(recipes) >= 2:
            top = len({recipes[i] for i in np.argsort(-ft, kind="stable")[:k]}
                      & {recipes[i] for i in np.argsort(-ch, kind="stable")[:k]})
        out.append(Agreement(finetuned, c, len(recipes), tuple(x for x in corrs if x.y == c), k, top,
                             tuple(sorted(((r, int(a), int(b)) for r, a, b in zip(recipes, rank_ft, rank_ch)),
                                          key=lambda t: (t[1], t[0])))))
    return out


# ---------------------------------------------------------------- what a report writes


Statistic = Summary | Correlation | Effect | Inversion | TrickEffect | Improvement | Agreement


def record(stat: Statistic) -> dict:
    """A statistic as a report writes it (JSON-ready): its fields, less those kept only to word
    it (``WORDING``), and its words."""
    out = asdict(stat)
    for f in fields(stat):
        if f.metadata.get("wording"):
            del out[f.name]
    return out | {"words": stat.words}

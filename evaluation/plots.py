"""Figures of a backbone comparison study, drawn from what ``evaluation/stats.py`` computes.

* :func:`scatter`: a downstream metric against ImageNet top-1, one point per recipe with its 95%
  intervals over seeds, the least-squares line over the recipe means and the correlation.
* :func:`forest`: every recipe minus the reference, one panel per metric; intervals that cover 0
  are drawn hollow and grey ("within noise").
* :func:`bump`: the recipes' ranks by each metric; lines that cross are rank inversions.

Each function writes ``<stem>.png`` (150 dpi) and ``<stem>.svg`` into ``out_dir``, each atomically,
and returns their paths ``[png, svg]``. The same input gives byte-identical files: matplotlib's
default style whatever the user's matplotlibrc, a fixed SVG hash salt, no date or software
version in the metadata. SVG text stays text (``svg.fonttype: none``), so it can be searched.

Not enough data (no recipe measured both metrics, no effect with a difference, fewer than two
recipes or two metrics to rank) is no error: the function still writes both files, a small
figure with the title and a line "Not enough data: <why>", so a report that links them never
shows a missing or stale picture.

No pyplot: figures are ``matplotlib.figure.Figure`` objects rendered by Agg (PNG) and the SVG
backend, so nothing opens a window and no global figure state is kept. The style is applied
with ``rc_context`` around each call (not thread-safe, as any rcParams change).
"""
from __future__ import annotations

import contextlib
import io
import itertools
import os
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.style
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import Bbox

from evaluation.stats import METHOD_NAMES, Correlation, Effect, Summary, name
from trickbench.fileio import atomic_write_bytes

DPI = 150
DATASETS = {"top1": "ImageNet", "top5": "ImageNet", "map": "VOC", "map_area": "VOC", "miou": "ADE20K",
            "aacc": "ADE20K", "macc": "ADE20K"}
_RC = {"svg.hashsalt": "trickbench", "svg.fonttype": "none", "font.size": 10, "axes.titlesize": 10,
       "axes.spines.top": False, "axes.spines.right": False}
_FILLED, _NOISE, _NA = "C0", "0.55", "0.2"  # beyond seed noise / within noise / no interval
_PALETTE = ["C0", "C1", "C2", "C3", "C4", "C5", "C6", "C8", "C9"]  # tab10 without its grey (C7)

SummaryTable = Mapping[str, Mapping[str, Summary]]  # recipe -> metric -> Summary (stats.summary_table)


def label(metric: str) -> str:
    """'top1' -> 'ImageNet top-1', 'map' -> 'VOC mAP', 'miou' -> 'ADE20K mIoU'."""
    return f"{DATASETS[metric]} {name(metric)}" if metric in DATASETS else name(metric)


def axis_label(metric: str) -> str:
    """The axis label with its unit: 'ImageNet top-1 (%)'."""
    return f"{label(metric)} (%)"


# ---------------------------------------------------------------- 1. downstream against top-1


def scatter(table: SummaryTable, out_dir: str | os.PathLike, stem: str, *, x: str = "top1", y: str = "map",
            correlation: Correlation | None = None) -> list[Path]:
    """One point per recipe at its (mean ``x``, mean ``y``) with the 95% intervals over seeds as
    error bars (none for a recipe with one seed), labelled with the recipe name; the
    least-squares line over the recipe means (2+ recipes with different ``x``); ``correlation``
    (of ``x`` and ``y``, else ValueError) with its interval under the title. Recipes missing
    ``x`` or ``y`` are left out and named in a footnote; with none left: "Not enough data"."""
    if correlation is not None and (correlation.x, correlation.y) != (x, y):
        raise ValueError(f"the correlation is of {correlation.x!r} and {correlation.y!r}, "
                         f"the scatter of {x!r} and {y!r}")
    title = f"{label(y)} against {label(x)}, one point per recipe"
    shown = [r for r in table if x in table[r] and y in table[r]]
    left_out = [r for r in table if r not in shown]
    with _style():
        if shown:
            fig = _scatter_figure(table, shown, left_out, x, y, correlation, title)
        else:
            count = f"{len(table)} recipe{'s' * (len(table) != 1)}" if table else "no recipes"
            fig = _placeholder(title, f"no recipe has both {name(x)} and {name(y)} ({count})")
        return _save(fig, out_dir, stem, title)


def _scatter_figure(table: SummaryTable, shown: list[str], left_out: list[str], x: str, y: str,
                    correlation: Correlation | None, title: str) -> Figure:
    fig = _figure((7.0, 5.6))
    ax = fig.add_subplot()
    notes = _scatter_axes(fig, ax, table, shown, x, y, correlation, labels=False)
    if left_out:
        notes.append(f"{len(left_out)} recipe{'s' * (len(left_out) != 1)} left out (no {name(x)} or "
                     f"{name(y)}): {', '.join(left_out)}.")
    fig.suptitle(title, fontsize=12)
    ax.annotate("\n".join(notes), (0, 0), xycoords="axes fraction", xytext=(0, -40), textcoords="offset points",
                ha="left", va="top", fontsize=8, color="0.3")
    _scatter_labels(fig, ax, table, shown, x, y)
    return fig


def _scatter_axes(fig: Figure, ax, table: SummaryTable, shown: list[str], x: str, y: str,
                  correlation: Correlation | None, labels: bool = True, bar_alpha: float = 1.0) -> list[str]:
    """One point per recipe in ``shown`` with its 95% intervals, the least-squares line, the
    correlation as the axes' title; returns the notes that explain them. ``labels``: name the
    points now (else :func:`_scatter_labels`, once the figure's layout is final)."""
    sx = [table[r][x] for r in shown]
    sy = [table[r][y] for r in shown]
    mx, my = np.array([s.mean for s in sx]), np.array([s.mean for s in sy])
    for a, b in zip(sx, sy):
        bars = ax.errorbar(a.mean, b.mean, xerr=_err(a), yerr=_err(b), fmt="o", color=_FILLED, ms=6, capsize=3,
                           elinewidth=1, zorder=3)
        for part in (*bars[1], *bars[2]):
            part.set_alpha(bar_alpha)
    notes = ["Points: recipe means; bars: 95% t interval over seeds (none with one seed)."]
    if len(shown) >= 2 and np.ptp(mx) > 0:
        slope, intercept = np.polyfit(mx, my, 1)
        lx = np.linspace(mx.min(), mx.max(), 41)
        ax.plot(lx, slope * lx + intercept, "--", color="0.45", lw=1.2, zorder=2)
        notes.append(f"Dashed: least-squares fit over the recipe means, slope {slope:.2f} "
                     f"{name(y)} points per {name(x)} point.")
    else:
        notes.append("No fitted line: it needs 2 recipes with different " + name(x) + ".")
    ax.set_title(_correlation_text(correlation) if correlation is not None
                 else "recipe means with 95% intervals over seeds", fontsize=10)
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    ax.grid(color="0.92", zorder=0)
    ax.margins(0.18)
    if labels:
        _scatter_labels(fig, ax, table, shown, x, y)
    return notes


def _scatter_labels(fig: Figure, ax, table: SummaryTable, shown: list[str], x: str, y: str) -> None:
    sx = [table[r][x] for r in shown]
    sy = [table[r][y] for r in shown]
    mx, my = np.array([s.mean for s in sx]), np.array([s.mean for s in sy])
    fit = None
    if len(shown) >= 2 and np.ptp(mx) > 0:
        slope, intercept = np.polyfit(mx, my, 1)
        lx = np.linspace(mx.min(), mx.max(), 41)
        fit = np.c_[lx, slope * lx + intercept]
    _place_labels(fig, ax, mx, my, shown, list(zip(sx, sy)), fit)


def _zoom_on_means(ax, sx: list[Summary], sy: list[Summary], pad: float = 0.3) -> bool:
    """Axes limits around the recipe means (``pad`` of their range on each side), so that
    recipes stay apart when their intervals are far wider (two seeds: t = 12.7); returns whether
    an interval runs past them."""
    clipped = False
    for s, set_lim in ((sx, ax.set_xlim), (sy, ax.set_ylim)):
        means = [v.mean for v in s]
        lo, hi = min(means), max(means)
        margin = pad * (hi - lo) or 1.0
        set_lim(lo - margin, hi + margin)
        clipped |= any(v.ci_low is not None and (v.ci_low < lo - margin or v.ci_high > hi + margin) for v in s)
    return clipped


def protocols(table: SummaryTable, out_dir: str | os.PathLike, stem: str, *,
              pairs: Sequence[tuple[str, str, Correlation | None]]) -> list[Path]:
    """One panel per (cheap metric, fine-tuned metric, its rank correlation or None): the cheap
    protocol's recipe means against full fine-tuning's, with 95% intervals over seeds."""
    title = "Cheap protocols against full fine-tuning, one point per recipe"
    with _style():
        if not pairs:
            return _save(_placeholder(title, "no cheap protocol was measured beside fine-tuning"), out_dir, stem,
                         title)
        cols = min(3, len(pairs))
        rows = -(-len(pairs) // cols)
        fig = _figure((5.2 * cols, 4.4 * rows + 0.8))
        axes = [fig.add_subplot(rows, cols, i + 1) for i in range(len(pairs))]
        drawn, clipped = [], False
        for ax, (x, y, corr) in zip(axes, pairs):
            shown = [r for r in table if x in table[r] and y in table[r]]
            if shown:
                _scatter_axes(fig, ax, table, shown, x, y, corr, labels=False, bar_alpha=0.4)
                if corr is not None:  # two lines: three panels side by side
                    ax.set_title(_correlation_text(corr).replace(", n = ", "\nn = "), fontsize=9)
                clipped |= _zoom_on_means(ax, [table[r][x] for r in shown], [table[r][y] for r in shown])
                drawn.append((ax, shown, x, y))
            else:
                ax.set_axis_off()
                ax.set_title(f"{name(x)}: no recipe has both", fontsize=10)
        fig.suptitle(title + "\nbars: 95% t intervals over pretraining seeds"
                     + (" (those wider than the spread of the means run past the panel)" if clipped else "")
                     + "; dashed: least-squares fit", fontsize=11)
        for ax, shown, x, y in drawn:
            _scatter_labels(fig, ax, table, shown, x, y)
        return _save(fig, out_dir, stem, title)


def _err(s: Summary) -> list[list[float]] | None:
    """Bar lengths below and above the mean; max(0, .) because an interval of zero width
    (seeds that agree to the last digit) can put its end a rounding error inside the mean."""
    return None if s.ci_low is None else [[max(0.0, s.mean - s.ci_low)], [max(0.0, s.ci_high - s.mean)]]


def _correlation_text(c: Correlation) -> str:
    head = METHOD_NAMES.get(c.method, c.method) + (" (log-odds)" if c.scale == "logit" else "")
    if c.estimate is None:
        return f"{head} n/a: not estimated from n = {c.n_recipes} recipes"
    ci = f"[{c.ci_low:.2f}, {c.ci_high:.2f}]" if c.ci_low is not None else "(interval n/a)"
    p = "" if c.p is None else f", permutation p = {c.p:.2g}"
    return f"{head} = {c.estimate:.2f} {ci}, n = {c.n_recipes} recipes{p}"


# Offsets (points) tried for a label, best first: the four diagonals, the sides, then further out.
# Offsets beyond _NEAR get a leader line to their point.
_NEAR = 8
_OFFSETS = [(d * sx, d * sy) for d in (5, 14, 26) for sx, sy in
            ((1, 1), (1, -1), (-1, 1), (-1, -1), (1.4, 0), (-1.4, 0), (0, 1.4), (0, -1.4))]


def _place_labels(fig: Figure, ax, mx: np.ndarray, my: np.ndarray, names: list[str],
                  bars: list[tuple[Summary, Summary]], fit: np.ndarray | None) -> None:
    """Label each point at the first offset whose text box stays inside the axes and overlaps
    the fewest other labels and markers, then error bars, then the fitted line; greedy, in
    recipe order. Deterministic: no random jitter, no iteration to convergence."""
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()  # runs the layout, so the axes' place on the canvas is final
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())
    frame = ax.get_window_extent(renderer)
    to_px = ax.transData.transform
    r = 5 * DPI / 72
    markers = [Bbox.from_extents(px - r, py - r, px + r, py + r) for px, py in to_px(np.c_[mx, my])]
    whiskers = []
    for a, b in bars:
        if a.ci_low is not None:
            whiskers.append(Bbox(to_px([[a.ci_low, b.mean], [a.ci_high, b.mean]])).padded(1))
        if b.ci_low is not None:
            whiskers.append(Bbox(to_px([[a.mean, b.ci_low], [a.mean, b.ci_high]])).padded(1))
    line = [] if fit is None else [Bbox(seg).padded(1) for seg in zip(to_px(fit)[:-1], to_px(fit)[1:])]
    placed: list[Bbox] = []
    for i, (px, py, text) in enumerate(zip(mx, my, names)):
        costs = []
        for dx, dy in _OFFSETS:
            t = _label(ax, text, px, py, dx, dy)
            box = t.get_window_extent(renderer)
            t.remove()
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            costs.append((100 * (not inside) + 10 * sum(box.overlaps(o) for o in placed)
                          + 10 * sum(box.overlaps(m) for j, m in enumerate(markers) if j != i)
                          + 3 * sum(box.overlaps(w) for w in whiskers) + sum(box.overlaps(s) for s in line) / 4
                          + max(abs(dx), abs(dy)) / 12, box))  # nearer is better
        k = min(range(len(costs)), key=lambda k: costs[k][0])  # the first of the cheapest
        dx, dy = _OFFSETS[k]
        _label(ax, text, px, py, dx, dy, leader=max(abs(dx), abs(dy)) > _NEAR)
        placed.append(costs[k][1])


def _label(ax, text: str, px: float, py: float, dx: float, dy: float, leader: bool = False):
    """The name of the point (px, py) at (dx, dy) points from it; a thin line to the point if far."""
    return ax.annotate(text, (px, py), xytext=(dx, dy), textcoords="offset points", fontsize=9, zorder=4,
                       ha="left" if dx > 0 else "right" if dx < 0 else "center",
                       va="bottom" if dy > 0 else "top" if dy < 0 else "center",
                       bbox=dict(boxstyle="square,pad=0.1", fc="white", ec="none", alpha=0.75),
                       arrowprops=dict(arrowstyle="-", color="0.35", lw=0.7, shrinkA=0, shrinkB=4) if leader else None)


# ---------------------------------------------------------------- 2. effects against the reference


def forest(effects: Sequence[Effect], out_dir: str | os.PathLike, stem: str) -> list[Path]:
    """A forest chart of ``stats.effects``: one panel per metric, side by side, one row per
    recipe (shared), the difference from the reference as a point and its 95% interval as a bar,
    a line at 0. Intervals that cover 0 are hollow and grey ("within noise"); a difference
    without an interval (one seed) is a diamond marked "n/a"; a recipe not measured on a metric
    is marked "not measured". Metrics with no difference at all get no panel; with none left
    (or no effects): "Not enough data". All effects must share one reference (else ValueError)."""
    references = list(dict.fromkeys(e.reference for e in effects))
    if len(references) > 1:
        raise ValueError(f"the effects have several references ({', '.join(references)}); draw one forest each")
    reference = references[0] if references else None
    title = (f"Each recipe minus the reference {reference!r}: mean over seeds with 95% interval"
             if reference is not None else "Each recipe minus the reference")
    metrics = list(dict.fromkeys(e.metric for e in effects if e.diff is not None))
    with _style():
        if metrics:
            fig = _forest_figure(effects, metrics, title)
        else:
            fig = _placeholder(title, "no effects to draw" if not effects
                               else "no metric was measured for the reference and another recipe")
        return _save(fig, out_dir, stem, title)


def _forest_figure(effects: Sequence[Effect], metrics: list[str], title: str) -> Figure:
    recipes = list(dict.fromkeys(e.recipe for e in effects))
    row = {r: i for i, r in enumerate(recipes)}
    fig = _figure((2.0 + 3.3 * len(metrics), 2.0 + 0.42 * len(recipes)))
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    kinds = set()
    for ax, metric in zip(axes, metrics):
        ax.axvline(0, color="black", lw=0.9, zorder=2)
        ends = [0.0]
        for e in (e for e in effects if e.metric == metric):
            yy = row[e.recipe]
            if e.diff is None:
                ax.text(0.5, yy, "not measured", transform=ax.get_yaxis_transform(), ha="center", va="center",
                        fontsize=8, color="0.5", style="italic")
            elif e.ci_low is None:
                kinds.add("na")
                ax.plot(e.diff, yy, "D", color=_NA, ms=5, zorder=3)
                ax.annotate("n/a", (e.diff, yy), xytext=(6, 0), textcoords="offset points", va="center",
                            fontsize=8, color=_NA)
                ends.append(e.diff)
            else:
                noise = bool(e.within_noise)
                kinds.add("noise" if noise else "filled")
                ax.errorbar(e.diff, yy, xerr=[[max(0.0, e.diff - e.ci_low)], [max(0.0, e.ci_high - e.diff)]], fmt="o", ms=7,
                            capsize=3, elinewidth=1.4, zorder=3, color=_NOISE if noise else _FILLED,
                            mfc="white" if noise else _FILLED, mec=_NOISE if noise else _FILLED)
                ends += [e.ci_low, e.ci_high]
        lo, hi = min(ends), max(ends)
        pad = 0.12 * (hi - lo) or 0.5
        ax.set_xlim(lo - pad, hi + 2 * pad)  # room on the right for "n/a"
        ax.set_title(label(metric))
        ax.set_xlabel(f"difference in {name(metric)} (points)")
        ax.grid(axis="x", color="0.92", zorder=0)
        ax.tick_params(axis="y", length=0)
    axes[0].set_yticks(range(len(recipes)), recipes)
    axes[0].set_ylim(len(recipes) - 0.5, -0.5)  # first recipe on top
    handles = {"filled": Line2D([], [], marker="o", color=_FILLED, ms=7,
                                label="beyond seed noise (interval excludes 0)"),
               "noise": Line2D([], [], marker="o", color=_NOISE, mfc="white", ms=7,
                               label="within noise (interval covers 0)"),
               "na": Line2D([], [], marker="D", ls="", color=_NA, ms=5, label="n/a: no interval (one seed, or no spread)")}
    fig.legend(handles=[handles[k] for k in ("filled", "noise", "na") if k in kinds], loc="outside lower center",
               ncols=3, frameon=False, fontsize=9)
    methods = {e.method for e in effects if e.method}
    how = {"paired": "paired t over matched seeds", "welch": "Welch's t",
           "dunnett": "Dunnett, seed variance pooled over recipes, 95% family-wise"}
    # One panel (a study that was only pretrained: top-1 alone) is narrower than the title: wrap it.
    fig.suptitle(textwrap.fill(title, int(fig.get_figwidth() * 11))
                 + ("\n(" + "; ".join(how[m] for m in sorted(methods)) + ")" if methods else ""), fontsize=11)
    return fig


# ---------------------------------------------------------------- 3. ranks across metrics


def bump_ranks(table: SummaryTable, metrics: Sequence[str]) -> dict[str, dict[str, int]]:
    """recipe -> metric -> rank by the recipe's mean, 1 = highest, among the recipes that
    measured the metric; tied means share the best rank. A metric a recipe lacks is absent."""
    ranks: dict[str, dict[str, int]] = {r: {} for r in table}
    for m in metrics:
        means = {r: table[r][m].mean for r in table if m in table[r]}
        for r, v in means.items():
            ranks[r][m] = 1 + sum(w > v for w in means.values())
    return ranks


def reordered(table: SummaryTable, metrics: Sequence[str]) -> set[str]:
    """The recipes whose order against some other recipe differs between two of ``metrics``
    (both measured by both): the crossing lines of the bump chart. Ties are no change."""
    out = set()
    for a, b in itertools.combinations(table, 2):
        signs = {np.sign(table[a][m].mean - table[b][m].mean) for m in metrics if m in table[a] and m in table[b]}
        if {1.0, -1.0} <= signs:
            out |= {a, b}
    return out


def bump(table: SummaryTable, out_dir: str | os.PathLike, stem: str, *,
         metrics: Sequence[str] = ("top1", "map", "miou")) -> list[Path]:
    """A bump chart: one column per metric (those some recipe measured), each recipe at its rank
    by mean (1 = best, at the top) joined across columns, its name at both ends. Recipes in an
    inversion (:func:`reordered`) are drawn thick and coloured, the others thin and grey; a
    missing metric leaves a gap in the line. Fewer than 2 recipes or 2 measured metrics:
    "Not enough data". Each line's SVG element has the id ``bump-<i>``, i = the recipe's index."""
    cols = [m for m in metrics if any(m in row for row in table.values())]
    title = "Rank of each recipe by " + _join([label(m) for m in metrics]) + " (1 = best mean over seeds)"
    with _style():
        if len(table) >= 2 and len(cols) >= 2:
            fig = _bump_figure(table, cols, [m for m in metrics if m not in cols], title)
        else:
            why = (f"{len(table)} recipe{'s' * (len(table) != 1)}; a ranking needs at least 2" if len(table) < 2
                   else f"{len(cols)} of {', '.join(name(m) for m in metrics)} measured; a ranking needs at least 2")
            fig = _placeholder(title, why)
        return _save(fig, out_dir, stem, title)


def _bump_figure(table: SummaryTable, cols: list[str], unmeasured: list[str], title: str) -> Figure:
    recipes = list(table)
    ranks = bump_ranks(table, cols)
    changed = reordered(table, cols)
    colours = dict(zip([r for r in recipes if r in changed], itertools.cycle(_PALETTE)))
    k, n = len(cols), max(max(v.values(), default=1) for v in ranks.values())
    fig = _figure((3.4 + 2.0 * k, 1.9 + 0.5 * n))
    ax = fig.add_subplot()
    for i, r in enumerate(recipes):
        if not ranks[r]:
            continue  # none of the metrics: named in the footnote
        hot = r in changed
        colour = colours.get(r, "0.62")
        ys = np.array([ranks[r].get(m, np.nan) for m in cols], dtype=float)  # NaN breaks the line: a gap
        ax.plot(range(k), ys, "-o", color=colour, lw=3.0 if hot else 1.6, ms=17 if hot else 15,
                zorder=3 if hot else 2, solid_capstyle="round", gid=f"bump-{i}")
        for j, v in enumerate(ys):
            if not np.isnan(v):
                ax.text(j, v, f"{int(v)}", ha="center", va="center_baseline", fontsize=8, color="white",
                        weight="bold", zorder=4)
        present = np.flatnonzero(~np.isnan(ys))
        text = dict(va="center", fontsize=10, color=colour if hot else "0.3", weight="bold" if hot else "normal")
        first, last = present[0], present[-1]
        ax.annotate(r, (first, ys[first]), xytext=(-14, 0), textcoords="offset points", ha="right", **text)
        if last != first or k == 1:
            ax.annotate(r, (last, ys[last]), xytext=(14, 0), textcoords="offset points", ha="left", **text)
    ax.set_xticks(range(k), [axis_label(m).replace(" (%)", "") for m in cols], fontsize=10)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.set_yticks([])
    ax.set_xlim(-0.25, k - 0.75)
    ax.set_ylim(n + 0.6, 0.4)
    for side in ax.spines.values():
        side.set_visible(False)
    missing = [f"{r} ({', '.join(name(m) for m in cols if m not in ranks[r])})" for r in recipes
               if len(ranks[r]) < k]
    notes = ["Coloured: the order of the recipe against another one changes between metrics (lines cross); "
             "grey: same order against every other recipe on every metric (a grey line may still move "
             "when another recipe was not measured)."]
    if missing:
        notes.append("Not measured (gap in the line): " + "; ".join(missing) + ".")
    if unmeasured:
        notes.append("No recipe measured " + _join([label(m) for m in unmeasured]) + ".")
    width = int(fig.get_figwidth() * 15)  # characters of 8 pt text across the figure
    ax.annotate("\n".join(textwrap.fill(t, width) for t in notes), (0.02, 0),
                xycoords=("figure fraction", "axes fraction"), xytext=(0, -8), textcoords="offset points",
                ha="left", va="top", fontsize=8, color="0.3")
    fig.suptitle(title, fontsize=11)
    return fig


# ---------------------------------------------------------------- common


@contextlib.contextmanager
def _style() -> Iterator[None]:
    """matplotlib's default style (not the user's matplotlibrc) plus ours, for one figure."""
    with matplotlib.style.context("default"), matplotlib.rc_context(_RC):
        yield


def _figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # a canvas that can measure text, without pyplot
    return fig


def _placeholder(title: str, why: str) -> Figure:
    fig = _figure((8.0, 2.2))
    fig.text(0.5, 0.66, textwrap.fill(title, 90), ha="center", va="center", fontsize=11)
    fig.text(0.5, 0.32, textwrap.fill(f"Not enough data: {why}", 100), ha="center", va="center", fontsize=10,
             color="0.3")
    return fig


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _save(fig: Figure, out_dir: str | os.PathLike, stem: str, title: str) -> list[Path]:
    """Render to PNG and SVG in memory (no date, no software version), then write each atomically."""
    rendered = {}
    for fmt, meta in (("png", {"Software": None, "Title": title}),
                      ("svg", {"Date": None, "Creator": None, "Title": title})):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=DPI, metadata=meta)
        rendered[fmt] = buf.getvalue()
    return [atomic_write_bytes(Path(out_dir) / f"{stem}.{fmt}", data) for fmt, data in rendered.items()]

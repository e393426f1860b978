"""evaluation/plots.py: each figure is written as a PNG that is not blank and an SVG that names
the recipes, byte-identical from one render to the next, and degenerate studies give a
"Not enough data" figure instead of an error."""
import xml.etree.ElementTree as ET

import matplotlib
import numpy as np
import pytest
from PIL import Image

from evaluation import plots
from evaluation.stats import Run, correlations, effects, summary_table

METRICS = ("top1", "map", "miou")
# recipe -> true means of (top1, map, miou); None: not measured. +cosine is within noise of the
# baseline on top-1 and trades places with +mixup on mAP; ResNet-50-D is first on every metric.
MEANS = {"baseline": (76.0, 79.0, 39.0), "+cosine": (76.1, 80.4, 39.6), "+mixup": (77.5, 80.0, 40.6),
         "ResNet-50-D": (78.5, 81.5, 41.5), "+one-seed": (77.0, 79.5, None)}
RECIPES = list(MEANS)
GREY = "#9e9e9e"  # the colour of a line whose order never changes (0.62 grey)


@pytest.fixture(scope="module")
def runs() -> list[Run]:
    rng = np.random.default_rng(0)
    out = []
    for recipe, means in MEANS.items():
        for seed in [0] if recipe == "+one-seed" else [0, 1, 2]:
            out.append(Run(recipe, seed, {m: v + rng.normal(0, 0.1) for m, v in zip(METRICS, means) if v is not None}))
    return out


@pytest.fixture(scope="module")
def table(runs):
    return summary_table(runs, METRICS)


@pytest.fixture(scope="module")
def pearson_map(runs):
    return next(c for c in correlations(runs, ys=("map",), methods=("pearson",), scales=("raw",), n_boot=200,
                                        n_perm=200) if c.y == "map")


@pytest.fixture(scope="module")
def effs(runs):
    return effects(runs, "baseline", METRICS)


def svg_texts(path) -> list[str]:
    """Every text element of the SVG (parsing also checks it is well-formed XML)."""
    root = ET.parse(path).getroot()
    return ["".join(e.itertext()) for e in root.iter() if e.tag.endswith("}text") or e.tag == "text"]


def check_png(path, coloured=True):
    with Image.open(path) as im:
        assert im.format == "PNG"
        a = np.asarray(im.convert("RGB")).astype(int)
    assert a.std() > 10, "blank image"
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 16, "too few colours: nothing drawn"
    if coloured:  # the blue of the points / lines is there
        assert ((a[..., 2] - a[..., 0]) > 60).sum() > 50


def check_written(paths, tmp_path, stem):
    assert paths == [tmp_path / f"{stem}.png", tmp_path / f"{stem}.svg"]
    assert all(p.is_file() for p in paths)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp file left


# ---------------------------------------------------------------- scatter


def test_scatter_draws_every_recipe_with_the_correlation(table, pearson_map, tmp_path):
    paths = plots.scatter(table, tmp_path, "s", x="top1", y="map", correlation=pearson_map)
    check_written(paths, tmp_path, "s")
    check_png(paths[0])
    texts = svg_texts(paths[1])
    for r in RECIPES:
        assert r in texts, r  # a point label of its own
    assert "ImageNet top-1 (%)" in texts and "VOC mAP (%)" in texts
    head = next(t for t in texts if t.startswith("Pearson r = "))
    assert f"n = {len(RECIPES)} recipes" in head
    assert "[" in head if pearson_map.ci_low is not None else "interval n/a" in head
    assert any(t.startswith("Dashed: least-squares fit") for t in texts)


def test_scatter_leaves_out_a_recipe_missing_y_and_says_so(table, tmp_path):
    paths = plots.scatter(table, tmp_path, "s", y="miou")
    texts = svg_texts(paths[1])
    assert "+one-seed" not in texts  # no point for it
    assert [t for t in texts if "+one-seed" in t] == ["1 recipe left out (no top-1 or mIoU): +one-seed."]
    assert "ADE20K mIoU (%)" in texts


def test_scatter_rejects_a_correlation_of_other_metrics(table, pearson_map, tmp_path):
    with pytest.raises(ValueError, match="correlation is of 'top1' and 'map'"):
        plots.scatter(table, tmp_path, "s", y="miou", correlation=pearson_map)
    assert list(tmp_path.iterdir()) == []


def test_correlation_text_without_interval():
    from evaluation.stats import Correlation
    c = Correlation("top1", "map", "spearman", "raw", 4, 0.8, None, None, 0.33, 0.5, True, 0, 0)
    assert plots._correlation_text(c) == "Spearman rho = 0.80 (interval n/a), n = 4 recipes, permutation p = 0.33"


# ---------------------------------------------------------------- forest


def test_forest_marks_noise_intervals_and_missing_ones(effs, tmp_path):
    # the inputs have each kind of row this test is about
    assert any(e.within_noise for e in effs) and any(e.within_noise is False for e in effs)
    assert any(e.diff is not None and e.ci_low is None for e in effs) and any(e.diff is None for e in effs)
    paths = plots.forest(effs, tmp_path, "f")
    check_written(paths, tmp_path, "f")
    check_png(paths[0])
    texts = svg_texts(paths[1])
    for r in RECIPES[1:]:
        assert r in texts, r  # a row each
    assert any("reference 'baseline'" in t for t in texts)
    assert {"ImageNet top-1", "VOC mAP", "ADE20K mIoU"} <= set(texts)  # one panel per metric
    assert "within noise (interval covers 0)" in texts and "beyond seed noise (interval excludes 0)" in texts
    assert texts.count("n/a") == 2  # +one-seed on top-1 and mAP
    assert texts.count("not measured") == 1  # +one-seed on mIoU


def test_forest_of_top1_alone_fits_its_title(effs, tmp_path):
    """Runs that were only pretrained have one panel, narrower than the title: it is wrapped."""
    top1 = [e for e in effs if e.metric == "top1"]
    paths = plots.forest(top1, tmp_path, "f")
    check_png(paths[0])
    texts = svg_texts(paths[1])
    assert "ImageNet top-1" in texts and "VOC mAP" not in texts
    assert "reference 'baseline'" in " ".join(texts)
    with plots._style():
        fig = plots._forest_figure(top1, ["top1"], "Each recipe minus the reference 'baseline': mean over seeds "
                                                   "with 95% interval")
        fig.draw_without_rendering()
        box = fig._suptitle.get_window_extent()
    assert 0 <= box.x0 and box.x1 <= fig.bbox.x1


def test_forest_legend_lists_only_what_is_drawn(effs, tmp_path):
    clear = [e for e in effs if e.within_noise is False]
    texts = svg_texts(plots.forest(clear, tmp_path, "f")[1])
    assert "beyond seed noise (interval excludes 0)" in texts
    assert not any("within noise" in t or t.startswith("n/a:") for t in texts)


def test_forest_rejects_several_references(runs, effs, tmp_path):
    other = effects(runs, "+mixup", ["top1"])
    with pytest.raises(ValueError, match="several references"):
        plots.forest(effs + other, tmp_path, "f")


# ---------------------------------------------------------------- bump


def test_bump_ranks_by_mean_with_gaps(table):
    ranks = plots.bump_ranks(table, METRICS)
    assert ranks["ResNet-50-D"] == {"top1": 1, "map": 1, "miou": 1}
    assert ranks["+one-seed"].keys() == {"top1", "map"}  # no mIoU: a gap, not a rank
    assert sorted(r["miou"] for r in ranks.values() if "miou" in r) == [1, 2, 3, 4]
    assert ranks["+cosine"]["map"] < ranks["+mixup"]["map"] and ranks["+cosine"]["top1"] > ranks["+mixup"]["top1"]
    assert "+cosine" in plots.reordered(table, METRICS) and "+mixup" in plots.reordered(table, METRICS)
    assert "ResNet-50-D" not in plots.reordered(table, METRICS)
    assert plots.reordered(table, ["top1"]) == set()  # one metric: nothing can cross


def _stroke(svg, gid):
    root = ET.parse(svg).getroot()
    group = next(e for e in root.iter() if e.get("id") == gid)
    path = next(e for e in group.iter() if e.tag.endswith("path"))
    style = dict(kv.split(": ") for kv in path.get("style").split("; "))
    return style["stroke"], float(style["stroke-width"]), path.get("d").count("L")


def test_bump_highlights_the_crossing_lines(table, tmp_path):
    paths = plots.bump(table, tmp_path, "b")
    check_written(paths, tmp_path, "b")
    check_png(paths[0])
    texts = svg_texts(paths[1])
    for r in RECIPES:
        assert texts.count(r) == 2, r  # its name at both ends
    assert {"ImageNet top-1", "VOC mAP", "ADE20K mIoU"} <= set(texts)
    cosine = _stroke(paths[1], f"bump-{RECIPES.index('+cosine')}")
    best = _stroke(paths[1], f"bump-{RECIPES.index('ResNet-50-D')}")
    assert cosine[0] != GREY and cosine[1] > best[1]
    assert best[0] == GREY and best[2] == 2  # three columns joined by two segments
    assert _stroke(paths[1], f"bump-{RECIPES.index('+one-seed')}")[2] == 1  # the gap at mIoU
    assert "Not measured (gap in the line): +one-seed (mIoU)." in texts


# ---------------------------------------------------------------- all figures


def render_all(table, effs, corr, out):
    return (plots.scatter(table, out, "scatter", correlation=corr) + plots.forest(effs, out, "forest")
            + plots.bump(table, out, "bump"))


def test_two_renders_are_byte_identical_whatever_the_user_style(table, effs, pearson_map, tmp_path):
    first = render_all(table, effs, pearson_map, tmp_path / "a")
    with matplotlib.rc_context({"font.size": 17, "lines.linewidth": 6, "axes.prop_cycle": matplotlib.cycler(color="k"),
                                "svg.hashsalt": None, "svg.fonttype": "path"}):
        second = render_all(table, effs, pearson_map, tmp_path / "b")
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert b"<dc:date>" not in first[1].read_bytes() and b"Matplotlib v" not in first[1].read_bytes()
    with Image.open(first[0]) as im:
        assert "Software" not in im.info and im.info["Title"].startswith("VOC mAP against ImageNet top-1")


def test_files_are_replaced_not_appended(table, tmp_path):
    (tmp_path / "b.svg").write_text("old")
    plots.bump(table, tmp_path, "b")
    assert svg_texts(tmp_path / "b.svg")


# ---------------------------------------------------------------- degenerate inputs: "Not enough data"


def not_enough(paths, tmp_path, stem, why):
    check_written(paths, tmp_path, stem)
    check_png(paths[0], coloured=False)
    texts = svg_texts(paths[1])
    assert any(t.startswith("Not enough data: ") and why in t for t in texts), texts
    return texts


@pytest.mark.parametrize("make, why", [
    (lambda t, out: plots.scatter({}, out, "x"), "no recipe has both top-1 and mAP (no recipes)"),
    (lambda t, out: plots.scatter({"baseline": {"top1": t["baseline"]["top1"]}}, out, "x"),
     "no recipe has both top-1 and mAP (1 recipe)"),
    (lambda t, out: plots.scatter(t, out, "x", y="map_area"), "no recipe has both top-1 and mAP (area)"),
    (lambda t, out: plots.forest([], out, "x"), "no effects to draw"),
    (lambda t, out: plots.bump({"baseline": t["baseline"]}, out, "x"), "1 recipe; a ranking needs at least 2"),
    (lambda t, out: plots.bump(t, out, "x", metrics=("top1", "top5")), "1 of top-1, top-5 measured"),
    (lambda t, out: plots.bump({}, out, "x"), "0 recipes"),
])
def test_degenerate_inputs_draw_a_not_enough_data_figure(table, tmp_path, make, why):
    not_enough(make(table, tmp_path), tmp_path, "x", why)


def test_forest_of_a_metric_nobody_measured(runs, tmp_path):
    effs = effects(runs, "baseline", ["top5"])
    assert effs and all(e.diff is None for e in effs)
    not_enough(plots.forest(effs, tmp_path, "x"), tmp_path, "x", "no metric was measured")


def test_scatter_of_one_recipe_has_no_fitted_line(table, tmp_path):
    paths = plots.scatter({"baseline": table["baseline"]}, tmp_path, "one")
    check_png(paths[0])
    texts = svg_texts(paths[1])
    assert "baseline" in texts and "No fitted line: it needs 2 recipes with different top-1." in texts
    assert not any(t.startswith("Not enough data") for t in texts)


def test_bump_names_a_recipe_with_none_of_the_metrics(table, tmp_path):
    odd = {**table, "top5-only": {"top5": table["baseline"]["top1"]}}
    texts = svg_texts(plots.bump(odd, tmp_path, "b")[1])
    assert "top5-only" not in texts
    assert any("top5-only (top-1, mAP, mIoU)" in t for t in texts)

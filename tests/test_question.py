"""A study's question: the comparison it is built to resolve (``question = dict(recipe, metric,
direction, text)``). The study file refuses a question it could never answer, naming the fix; the
plan passes it to the report job, and a study without one plans what it planned before; the
report opens with the answer, read from its Dunnett comparison with the reference and checked
here against ``scipy.stats.dunnett`` on the backbone values read back from the results."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy import stats as sps

from evaluation import report, table
from tests.conftest import run_cli
from tests.test_protocol_study import write_protocol_runs
from tests.test_study import DET, PRETRAIN, SEG, data_lines, write_study
from trickbench import results
from trickbench.study import plan as plan_mod
from trickbench.study import spec
from trickbench.study.spec import StudyError, load_study


def question_study(folder, question: str = "", reference: str = 'reference = "base"', extra: str = ""):
    return write_study(folder, data_lines(folder) + f'''
seeds = [0, 1]
recipes = [dict(name="base", config="{PRETRAIN}"), dict(name="r18d", config="{PRETRAIN}",
           options={{"model.variant": "D"}}), dict(name="teacher", config="{PRETRAIN}", downstream=False)]
downstream = dict(segmentation=["{SEG}"])
{reference}
{question}
{extra}''')


# ------------------------------------------------------------------ the study file


@pytest.mark.parametrize("question, message", [
    ('question = dict(recipe="r18", metric="miou", direction="higher")',
     "question.recipe 'r18' is not a recipe of the study (did you mean r18d?)"),
    ('question = dict(recipe="base", metric="miou", direction="higher")',
     "question.recipe base is the reference itself; name the recipe to compare with it, or another reference"),
    ('question = dict(recipe="r18d", metric="mIoU", direction="higher")',
     "question.metric 'mIoU' is not a metric the report compares recipes on (did you mean miou?); metrics: top1"),
    ('question = dict(recipe="r18d", metric="miou", direction="better")',
     "question.direction 'better' must be one of higher, lower, different"),
    ('question = dict(recipe="r18d", metric="miou")', "question.direction None must be one of"),
    ('question = dict(recipe="r18d", metric="map", direction="higher")',
     "question.metric map is measured by detection fine-tuning, which the study does not run; add a config to "
     "downstream.detection"),
    ('question = dict(recipe="teacher", metric="miou", direction="higher")',
     "recipe teacher has downstream=False; fine-tune it, or ask about top1"),
    ('question = dict(recipe="r18d", metric="miou", direction="higher", text="two\\nlines")',
     "question.text must be one line of text"),
    ('question = dict(recipe="r18d", metrc="miou", direction="higher")',
     "key question.metrc (did you mean question.metric?); known keys of question: direction, metric, recipe, text"),
])
def test_a_question_the_study_cannot_answer_is_refused_naming_the_fix(tmp_path, question, message):
    path = question_study(tmp_path, question)
    with pytest.raises(StudyError) as e:
        load_study(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)


def test_a_question_needs_the_reference_it_is_asked_against(tmp_path):
    path = question_study(tmp_path, 'question = dict(recipe="r18d", metric="top1", direction="higher")',
                          reference="")
    proc = run_cli("-m", "trickbench.study", "plan", str(path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (f"{path}: question compares recipe r18d with the reference, which is not set; add reference = "
            f"'RECIPE'") in proc.stderr


def test_the_study_and_the_report_share_the_question_s_words():
    assert tuple(spec.QUESTION_METRICS) == table.METRICS
    assert spec.DIRECTIONS == report.DIRECTIONS


# ------------------------------------------------------------------ the plan


def test_the_plan_passes_the_question_and_a_study_without_one_plans_as_before(tmp_path):
    before = plan_mod.build(load_study(question_study(tmp_path)), tmp_path / "w")
    text = "Does ResNet-D segment better than the baseline?"
    study = load_study(question_study(tmp_path, f'question = dict(recipe="r18d", metric="miou", '
                                                f'direction="higher", text="{text}")'))
    assert study.question == spec.Question("r18d", "miou", "higher", text)
    plan = plan_mod.build(study, tmp_path / "w")
    old, new = before.job("report"), plan.job("report")
    assert new.argv == (*old.argv, "--question", "r18d:miou:higher", "--question-text", text)
    assert new.fingerprint != old.fingerprint and new.deps == old.deps
    assert [(j.id, j.argv, j.fingerprint) for j in plan.jobs[:-1]] == \
        [(j.id, j.argv, j.fingerprint) for j in before.jobs[:-1]]
    assert plan.warnings == before.warnings == ()
    # what the report reads back from the job's command is the study's question
    args = new.argv[new.argv.index("--question") + 1:]
    assert dataclasses.astuple(report.parse_question(args[0], args[2])) == dataclasses.astuple(study.question)
    # without the text: no --question-text, and another fingerprint
    bare = plan_mod.build(load_study(question_study(tmp_path, 'question = dict(recipe="r18d", metric="miou", '
                                                              'direction="different")')), tmp_path / "w")
    assert bare.job("report").argv == (*old.argv, "--question", "r18d:miou:different")
    assert len({bare.job("report").fingerprint, new.fingerprint, old.fingerprint}) == 3


def test_one_seed_per_recipe_is_said_before_anything_runs(tmp_path):
    path = question_study(tmp_path, 'question = dict(recipe="r18d", metric="miou", direction="higher")\nseeds = [0]')
    (warning,) = plan_mod.build(load_study(path), tmp_path / "w").warnings
    assert "every recipe measured on miou has one seed" in warning and "cannot resolve whether r18d" in warning


# ------------------------------------------------------------------ the report's answer

# recipe -> fine-tuned mAP, mIoU (write_protocol_runs adds 0.3-sd noise per backbone)
MEANS = {"base": (70.0, 30.0), "better": (73.0, 33.0), "same": (70.0, 30.1), "worse": (67.0, 27.0)}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return write_protocol_runs(tmp_path_factory.mktemp("question") / "runs", recipes=MEANS)


def backbone_values(root, metric: str) -> dict[str, list[float]]:
    """recipe -> the fine-tuned ``metric`` of each of its backbones, read back from the result files."""
    out: dict[str, list[float]] = {}
    for r in sorted(results.find(root).results, key=lambda r: (r.recipe, r.seed)):
        if r.stage in ("detection", "segmentation") and r.protocol_name == "finetune" and metric in r.metrics:
            out.setdefault(r.recipe, []).append(r.metrics[metric])
    return out


def scipy_dunnett(root, recipe: str, metric: str, reference: str = "base"):
    """The interval and p of ``recipe`` - ``reference`` by scipy.stats.dunnett over every recipe."""
    values = backbone_values(root, metric)
    others = [r for r in values if r != reference]
    res = sps.dunnett(*[values[r] for r in others], control=values[reference], rng=np.random.default_rng(7))
    ci = res.confidence_interval(0.95)
    i = others.index(recipe)
    return (float(np.mean(values[recipe]) - np.mean(values[reference])), ci.low[i], ci.high[i], res.pvalue[i],
            sum(map(len, values.values())) - len(values))


@pytest.mark.parametrize("recipe, verdict, words", [
    ("better", "yes", "**Yes: better's mIoU is higher than base's beyond seed noise (+"),
    ("same", "not resolved", "**Not resolved: the interval covers 0 ("),
    ("worse", "no", "**No: worse's mIoU is lower than base's, not higher: the interval lies below zero (-"),
])
def test_the_report_opens_with_the_answer_checked_against_scipy(runs, tmp_path, recipe, verdict, words):
    out = tmp_path / "r"
    text = f"Does {recipe} segment better than the baseline?"
    assert report.main(["--runs", str(runs), "--out", str(out), "--reference", "base",
                        "--question", f"{recipe}:miou:higher", "--question-text", text]) == 0
    md = (out / "report.md").read_text()
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections[:2] == ["## The question", "## Does ImageNet top-1 predict transfer?"]
    section = md[md.index("## The question"):md.index(sections[1])]
    assert f"> {text}" in section and "Is " + recipe + "'s ADE20K mIoU higher than base's?" in section
    assert words in section
    data = json.loads((out / "report.json").read_text())
    q = data["question"]
    assert (q["recipe"], q["metric"], q["direction"], q["reference"], q["text"], q["verdict"]) == \
        (recipe, "miou", "higher", "base", text, verdict)
    # the answer is the comparison of 'Effects against base'
    effect = next(e for e in data["effects"] if e["recipe"] == recipe and e["metric"] == "miou")
    assert effect["method"] == "dunnett"
    assert (q["estimate"], q["low"], q["high"], q["df"], q["pvalue"]) == \
        (effect["diff"], effect["ci_low"], effect["ci_high"], effect["df"], effect["pvalue"])
    # ... and scipy's Dunnett on the backbone values read back from the results gives it (another QMC stream)
    diff, low, high, p, df = scipy_dunnett(runs, recipe, "miou")
    assert q["estimate"] == pytest.approx(diff, abs=1e-9) and q["df"] == df == 12 - 4
    assert q["low"] == pytest.approx(low, abs=0.02) and q["high"] == pytest.approx(high, abs=0.02)
    assert q["pvalue"] == pytest.approx(p, abs=0.005)
    independent = "yes" if low > 0 else "no" if high < 0 else "not resolved"
    assert independent == verdict
    assert f"{q['estimate']:+.2f} [{q['low']:.2f}, {q['high']:.2f}] points, {df} df, adjusted p" in q["words"]
    assert q["words"] in md and q["reason"] is None and q["evalset"] is None


def analysed(runs, question: str, reference: str = "base") -> report.Answer:
    joined = table.join(table.find_results(runs), {})
    t = table.tabulate(joined, runs)
    return report.analyse(t.runs, t.factors, reference, question=report.parse_question(question)).question


@pytest.mark.parametrize("question, verdict, start", [
    ("worse:map:lower", "yes", "Yes: worse's mAP is lower than base's beyond seed noise (-"),
    ("better:map:lower", "no", "No: better's mAP is higher than base's, not lower: the interval lies above zero (+"),
    ("worse:miou:different", "yes", "Yes: worse's mIoU differs from base's beyond seed noise: it is lower (-"),
    ("same:miou:different", "not resolved", "Not resolved: the interval covers 0 ("),
])
def test_each_direction_reads_the_interval_its_own_way(runs, question, verdict, start):
    a = analysed(runs, question)
    assert a.verdict == verdict and a.words.startswith(start)
    recipe, metric, _ = question.split(":")
    _, low, high, _, _ = scipy_dunnett(runs, recipe, metric)
    assert a.effect.ci_low == pytest.approx(low, abs=0.02) and a.effect.ci_high == pytest.approx(high, abs=0.02)
    if verdict == "not resolved":
        assert a.words.endswith("a study with more seeds could tell")
        assert dataclasses.replace(a, seed_plan=True).words.endswith(
            "a study with more seeds could tell: see 'Seeds for the next study'")


def test_a_comparison_that_cannot_be_estimated_says_why(runs, tmp_path):
    one = write_protocol_runs(tmp_path / "one", recipes=MEANS, seeds=(0,))
    a = analysed(one, "better:miou:higher")
    assert a.verdict == "not resolved" and a.effect.ci_low is None
    assert a.words == ("Not resolved: pooled df = 0 (every recipe has one backbone): no backbone-to-backbone "
                       "spread; run 2+ pretraining seeds")
    assert a.lines == [f"better minus base: {a.effect.diff:+.2f} points, without an interval."]
    assert analysed(runs, "better:top5:higher").words == ("Not resolved: no run has ImageNet top-5: no pretrain "
                                                          "result to compare")
    assert analysed(runs, "bettr:miou:higher").words == ("Not resolved: no run of recipe bettr (did you mean "
                                                         "better?); the recipes are base, better, same, worse")
    record = report.question_record(a)
    assert (record["verdict"], record["low"], record["df"], record["method"]) == ("not resolved", None, None, None)


@pytest.mark.parametrize("args, message", [
    (["--question", "base:miou:higher"], "--question asks about base, which is the reference"),
    (["--question", "better:mIoU:higher"], "'mIoU' is not a metric the report compares recipes on (did you mean "
                                           "miou?)"),
    (["--question", "better:miou"], "must be RECIPE:METRIC:DIRECTION"),
    (["--question", "better:miou:up"], "direction 'up' must be one of higher, lower, different"),
    (["--question-text", "Is it better?"], "--question-text needs --question"),
])
def test_a_bad_question_stops_the_report_naming_it(runs, tmp_path, capsys, args, message):
    assert report.main(["--runs", str(runs), "--out", str(tmp_path / "r"), "--reference", "base", *args]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "r" / "report.md").exists()


def test_the_test_set_noise_of_the_difference_is_given_beside_the_answer(tmp_path):
    from tests.test_evalset import write_detection_study

    runs, out = write_detection_study(tmp_path / "runs"), tmp_path / "r"
    assert report.main(["--runs", str(runs), "--out", str(out), "--question", "better:map:different"]) == 0
    data = json.loads((out / "report.json").read_text())
    q = data["question"]
    (c,) = next(e for e in data["evalset_noise"] if e["metric"] == "map")["comparisons"]
    assert q["evalset"] == {"sd": c["sd"], "sd_unpaired": c["sd_unpaired"], "low": c["low"], "high": c["high"],
                            "confidence": 0.95, "images": 16}
    md = (out / "report.md").read_text()
    section = md[md.index("## The question"):md.index("## Does ImageNet")]
    assert ("- Test-set noise, which the seed interval does not include (every backbone is scored on the same 16 test "
            f"images): a paired bootstrap over the images gives better - baseline: {c['estimate']:+.2f}, test-set sd "
            f"{c['sd']:.2f} paired") in section

"""A study's plan: the jobs it runs, their commands and their dependencies, as a
function of the study file; and where each job stands, read from the work dir.

Jobs, in the order they can run::

    pretrain/<recipe>/seed<N>                    pretrain/run.py     (teachers before their students)
    detection/<config>/<recipe>/seed<N>          downstream/detect.py   after its pretraining
    segmentation/<config>/<recipe>/seed<N>       downstream/segment.py  after its pretraining
      .../seed<N>/trial<i>, .../seed<N>/ft<F>    a sweep's trials, the fine-tune seeds (downstream.sweep, .seeds)
      .../seed<N>/frozen[/ft<F>]                 another trained protocol (downstream.protocols)
    probe/<knn|voc07-svm>/<recipe>/seed<N>       downstream/probe.py    after its pretraining
    report                                       evaluation/report.py   after all of them, however they ended

Each run goes where the leaderboard and the report look for it:
``WORK/runs/<recipe>/seed<N>`` (backbone id ``<recipe>-seed<N>``, passed to the run as
``run.name`` and ``run.recipe``) and its fine-tunings in ``detection/<config>`` and
``segmentation/<config>`` inside it. A study without downstream configs is pretraining
only (the paper's Tables 3-6): its report analyses top-1 and top-5.

Every job has a **fingerprint**: a hash of everything that decides its result (the
resolved config with the study's options, seed and data root, and the fingerprints
of the jobs it reads). Its run records the fingerprint in ``result.json``
(``study.fingerprint``), so a job is *done* when its result exists and carries the
fingerprint the plan computes now; change a recipe and its jobs, and everything
downstream of them, become *stale* and run again (the old run is moved aside,
never deleted).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trickbench import results
from trickbench.fileio import read_jsonl
from trickbench.mmconfig import ConfigFileError, check_options, read_config
from trickbench.pretrain_config import ConfigError, fingerprint_view, load_config
from trickbench.tricks import TRICKS, factors, tricks_of, variant_of

from .spec import QUESTION_METRICS, Recipe, Resources, Study, StudyError

JOB_STAMP = ".trickbench-job.json"   # written into a job's work dir when it starts: its fingerprint


@dataclass(frozen=True)
class Job:
    id: str
    stage: str                        # pretrain, detection, segmentation or report
    argv: tuple[str, ...]             # the entry point and its arguments, run with python from the repository
    work_dir: Path
    deps: tuple[str, ...]
    resources: Resources
    fingerprint: str
    recipe: str | None = None
    seed: int | None = None
    after_any: bool = False           # runs once its dependencies have ended, whether they succeeded or not

    @property
    def slug(self) -> str:
        """The job id as a file name (logs, scripts)."""
        return self.id.replace("/", "__")


@dataclass(frozen=True)
class Plan:
    study: Study
    work_dir: Path
    jobs: tuple[Job, ...]             # dependencies first
    warnings: tuple[str, ...] = ()    # what the report will not be able to estimate, said before anything runs
    _index: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        self._index.update({j.id: j for j in self.jobs})

    def job(self, job_id: str) -> Job:
        return self._index[job_id]

    def dependents(self, job_id: str) -> list[str]:
        """Every job that needs ``job_id`` to succeed, directly or not (not the report)."""
        out, frontier = [], {job_id}
        for j in self.jobs:
            if not j.after_any and frontier & set(j.deps):
                out.append(j.id)
                frontier.add(j.id)
        return out

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "logs"

    def log(self, job: Job) -> Path:
        return self.log_dir / f"{job.slug}.log"

    @property
    def events(self) -> Path:
        return self.work_dir / "study" / "events.jsonl"


def _hash(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def option_args(options: dict[str, Any], where: str) -> list[str]:
    """``--cfg-options`` words for ``options``, each checked to read back as the same value
    through mmengine's ``DictAction`` (a string with a comma would come back a list)."""
    from mmengine.config import DictAction

    words = []
    for key, value in options.items():
        if isinstance(value, tuple):  # read back as a tuple: mmcv's transforms take (w, h) tuples, not lists
            text = "(" + ",".join(_word(v) for v in value) + ("," if len(value) == 1 else "") + ")"
        elif isinstance(value, list):
            text = "[" + ",".join(_word(v) for v in value) + "]"
        else:
            text = _word(value)
        back = DictAction._parse_iterable(text)
        if back != value:
            raise StudyError(f"{where}: option {key}={value!r} does not survive the command line (it reads back as "
                             f"{back!r}); use a value without commas, brackets or quotes")
        words.append(f"{key}={text}")
    return words


def _word(value: Any) -> str:
    return "None" if value is None else str(value)


def build(study: Study, work_dir: str | os.PathLike) -> Plan:
    """The plan of ``study`` in ``work_dir``: every job, its command and fingerprint. Reads the
    configs (to check and hash them), runs nothing and writes nothing."""
    work = Path(work_dir).resolve()
    runs = work / "runs"
    jobs: list[Job] = []
    pretrain: dict[tuple[str, int], Job] = {}
    factor_sets: dict[str, tuple[str, ...]] = {}

    def run_dir(recipe: str, seed: int) -> Path:
        return runs / recipe / f"seed{seed}"

    def teacher_seed(teacher: Recipe, seed: int) -> int:
        return seed if seed in teacher.seeds else teacher.seeds[0]

    for recipe in _teachers_first(study.recipes):
        if recipe.external:
            continue
        for seed in recipe.seeds:
            options, deps = {}, []
            for key, value in recipe.options.items():
                if isinstance(value, str) and value.startswith("@"):
                    t = study.recipe(value[1:])
                    tj = pretrain[(t.name, teacher_seed(t, seed))]
                    value, _ = str(tj.work_dir), deps.append(tj.id)
                options[key] = value
            options = {**options, "data.root": str(study.data["imagenet"]), "run.seed": seed}
            # The fingerprint is of what decides the result; the run's names are not part of it.
            resolved = _pretrain_config(recipe, options)
            factor_sets.setdefault(recipe.name, _factors(resolved))
            named = {"run.name": backbone_id(recipe.name, seed), "run.recipe": recipe.name} | options
            wd = run_dir(recipe.name, seed)
            job = Job(
                id=f"pretrain/{recipe.name}/seed{seed}", stage="pretrain",
                argv=("pretrain/run.py", "--config", str(recipe.config), "--work-dir", str(wd), "--resume",
                      "--cfg-options", *option_args(named, f"recipe {recipe.name}")),
                work_dir=wd, deps=tuple(deps), resources=study.resources["pretrain"],
                fingerprint=_hash({"stage": "pretrain", "config": fingerprint_view(resolved),
                                   "teachers": [t.fingerprint for t in pretrain.values() if t.id in deps]}),
                recipe=recipe.name, seed=seed)
            pretrain[(recipe.name, seed)] = job
            jobs.append(job)

    downstream: list[Job] = []
    for task, script, root in (("detection", "downstream/detect.py", "voc"),
                               ("segmentation", "downstream/segment.py", "ade20k")):
        for protocol, config in study.trained(task):
            downstream += _downstream_jobs(study, task, config, script, root, pretrain, run_dir, protocol)
    for probe in study.probes:
        downstream += _probe_jobs(study, probe, pretrain, run_dir)
    jobs += downstream

    det = study.detection or (None,)
    seg = study.segmentation or (None,)
    pairs = [(d, s) for d in det for s in seg]
    for d, s in pairs:
        suffix = "" if len(pairs) == 1 else "/" + "+".join(c.stem for c in (d, s) if c is not None)
        out = work / ("report" + suffix.replace("/", "-"))
        argv = ["evaluation/report.py", "--runs", str(runs), "--out", str(out)]
        argv += ["--reference", study.reference] if study.reference else []
        argv += ["--det-config", d.stem] if d is not None else []
        argv += ["--seg-config", s.stem] if s is not None else []
        if study.question is not None:  # only then: a study without one plans the argv and fingerprint of before
            argv += ["--question", study.question.arg]
            argv += ["--question-text", study.question.text] if study.question.text else []
        linear = f"segmentation/{study.ade_linear.stem}/" if study.ade_linear is not None else None
        deps = tuple(j.id for j in jobs if j.stage in ("pretrain", "probe")
                     or (j.stage == "detection" and d is not None and f"/{d.stem}/" in j.id)
                     or (j.stage == "segmentation" and s is not None and f"/{s.stem}/" in j.id)
                     or (linear is not None and j.id.startswith(linear)))
        jobs.append(Job(id="report" + suffix, stage="report", argv=tuple(argv), work_dir=out, deps=deps,
                        resources=study.resources["report"],
                        fingerprint=_hash({"argv": argv[5:], "deps": [j.fingerprint for j in jobs if j.id in deps]}),
                        after_any=True))
    return Plan(study, work, tuple(jobs), tuple(_design_warnings(study, factor_sets) + _question_warnings(study)))


def _source(recipe: Recipe, seed: int, pretrain: dict[tuple[str, int], Job]) -> tuple[list[str], tuple, Any]:
    """How a downstream job names its backbone: the arguments, the jobs it waits for, and what
    its fingerprint takes from upstream."""
    if recipe.external:
        source = ["--backbone", str(recipe.checkpoint), "--name", backbone_id(recipe.name, seed),
                  "--recipe", recipe.name, "--pretrain-seed", str(seed)]
        source += ["--top1", str(recipe.top1)] if recipe.top1 is not None else []
        source += ["--variant", recipe.variant] if recipe.variant else []
        return source, (), _file_identity(recipe.checkpoint)
    up = pretrain[(recipe.name, seed)]
    return ["--backbone", str(up.work_dir)], (up.id,), up.fingerprint


def _probe_jobs(study: Study, probe: str, pretrain: dict[tuple[str, int], Job], run_dir) -> list[Job]:
    """A deterministic probe (knn, voc07-svm): one job per backbone, ``probe/<name>/<recipe>/seed<N>``,
    its run in ``runs/<recipe>/seed<N>/probe/<name>``. An external checkpoint is read through the
    first trained recipe's pretraining config (its image size and validation transform)."""
    root = "imagenet" if probe == "knn" else "voc"
    extra: list[str] = []
    if probe == "voc07-svm" and study.detection:
        extra += ["--classes-from", str(study.detection[0])]
    trained = [r for r in study.recipes if not r.external]
    jobs = []
    for recipe in study.recipes:
        if not recipe.downstream:
            continue
        for seed in recipe.seeds:
            source, deps, upstream = _source(recipe, seed, pretrain)
            if recipe.external and trained:  # its image size and transform: part of what decides the result
                source += ["--pretrain-config", str(trained[0].config)]
                upstream = {"backbone": upstream, "pretrain_config": _pretrain_config(trained[0], {})}
            wd = run_dir(recipe.name, seed) / "probe" / probe
            jobs.append(Job(
                id=f"probe/{probe}/{recipe.name}/seed{seed}", stage="probe",
                argv=("downstream/probe.py", probe, *source, "--data-root", f"{study.data[root]}/", *extra,
                      "--work-dir", str(wd), "--resume"),
                work_dir=wd, deps=deps, resources=study.resources["probe"],
                fingerprint=_hash({"stage": "probe", "protocol": probe, "data": str(study.data[root]),
                                   "recipe": recipe.name, "backbone": upstream, "extra": extra}),
                recipe=recipe.name, seed=seed))
    return jobs


def _downstream_jobs(study: Study, task: str, config: Path, script: str, root: str,
                     pretrain: dict[tuple[str, int], Job], run_dir, protocol: str = "finetune") -> list[Job]:
    """One config's fine-tuning jobs under one trained protocol: per backbone (recipe x pretraining
    seed), the sweep's trials (one per grid point, scored on held-out training images) and then one
    fine-tune per fine-tune seed with the values the trials chose, scored on the test split. A
    protocol other than finetune runs in a folder of its own name inside the config's
    (``detection/<config>/frozen``), as jobs ``.../seed<N>/frozen[/ft<F>]``."""
    opts = study.downstream_options[task]
    resolved = _downstream_config(config, opts, task)
    grid = study.grid(task)
    for point in grid:  # every swept key must be one the config has, before anything runs
        try:
            check_options(resolved["values"], point, str(config))
        except ConfigFileError as e:
            raise StudyError(f"{study.source}: downstream.sweep.{task}: {e}") from None
    ft_seeds = study.seeds_of(task)
    jobs: list[Job] = []
    for recipe in study.recipes:
        if not recipe.downstream:
            continue
        trials: dict[int, list[Job]] = {}
        finals: list[tuple[int, int | None, Path, tuple, str]] = []
        for seed in recipe.seeds:
            folder = run_dir(recipe.name, seed) / task / config.stem
            source, deps, upstream = _source(recipe, seed, pretrain)
            common = (*source, "--config", str(config), "--data-root", f"{study.data[root]}/")
            if protocol != "finetune":  # finetune's commands, folders and fingerprints are those from before protocols
                folder, common = folder / protocol, (*common, "--protocol", protocol)
                upstream = {"backbone": upstream, "protocol": protocol}
            tail = ("--cfg-options", *option_args(opts, f"downstream.options.{task}")) if opts else ()
            base_id = f"{task}/{config.stem}/{recipe.name}/seed{seed}" + ("" if protocol == "finetune" else
                                                                          f"/{protocol}")
            first_ft = ft_seeds[0] if ft_seeds else seed
            for i, point in enumerate(grid):
                wd = folder / "sweep" / f"trial{i}"
                jobs.append(Job(
                    id=f"{base_id}/trial{i}", stage=task,
                    argv=(script, *common, "--work-dir", str(wd), "--seed", str(first_ft), "--resume",
                          "--heldout", str(study.heldout),
                          "--sweep", *option_args(point, f"downstream.sweep.{task}"), *tail),
                    work_dir=wd, deps=deps, resources=study.resources[task],
                    fingerprint=_hash({"stage": task, "config": resolved, "data": str(study.data[root]),
                                       "seed": first_ft, "recipe": recipe.name, "backbone": upstream,
                                       "heldout": study.heldout, "values": point}),
                    recipe=recipe.name, seed=seed))
                trials.setdefault(seed, []).append(jobs[-1])
            for ft in ft_seeds or (seed,):
                wd = folder if ft_seeds is None else folder / f"ft{ft}"
                job_id = base_id if ft_seeds is None else f"{base_id}/ft{ft}"
                finals.append((seed, ft, wd, (common, tail, deps, upstream), job_id))
        for seed, ft, wd, (common, tail, deps, upstream), job_id in finals:
            chosen_from = [t for s, ts in trials.items() for t in ts
                           if study.choose == "recipe" or s == seed]
            select = ("--select-from", *(str(t.work_dir) for t in chosen_from)) if chosen_from else ()
            jobs.append(Job(
                id=job_id, stage=task,
                argv=(script, *common, "--work-dir", str(wd), "--seed", str(ft), "--resume", *select, *tail),
                work_dir=wd, deps=tuple(deps) + tuple(t.id for t in chosen_from), resources=study.resources[task],
                fingerprint=_hash({"stage": task, "config": resolved, "data": str(study.data[root]), "seed": ft,
                                   "recipe": recipe.name, "backbone": upstream}
                                  | ({"trials": [t.fingerprint for t in chosen_from]} if chosen_from else {})),
                recipe=recipe.name, seed=seed))
    return jobs


def backbone_id(recipe: str, seed: int) -> str:
    """The backbone id of one seed of a recipe, unique in the study (``r18d-seed1``)."""
    return f"{recipe}-seed{seed}"


def _factors(resolved: dict) -> tuple[str, ...]:
    return factors(tricks_of(resolved), variant_of(resolved))


def _design_warnings(study: Study, factor_sets: dict[str, tuple[str, ...]]) -> list[str]:
    """Recipes of one design that the report would not tell apart: the tricks and variant read
    from their resolved configs (as the report reads them from the results) are the same, though
    the design gave them different tricks (a trick defined in ``trick_options`` that the trick
    table does not know, or a trick the base config already has on)."""
    out = []
    by_design: dict[str, list[Recipe]] = {}
    for r in study.recipes:
        if r.design is not None and r.name in factor_sets:
            by_design.setdefault(r.design, []).append(r)
    for design, recipes in by_design.items():
        for a, b in itertools.combinations(recipes, 2):
            if factor_sets[a.name] == factor_sets[b.name]:
                unknown = sorted((set(a.tricks) ^ set(b.tricks)) - set(TRICKS))
                why = (f"trick(s) {', '.join(unknown)} are not in the trick table (trickbench/tricks.py), so no "
                       f"result names them" if unknown else "the base config already has those tricks on")
                out.append(f"{design}: recipes {a.name} and {b.name} have the same tricks and variant in their "
                           f"configs ({'+'.join(factor_sets[a.name]) or 'none'}): {why}; the report compares them "
                           f"against the reference, but leaves them out of the trick effects")
    return out


def _question_warnings(study: Study) -> list[str]:
    """The study's question cannot be resolved when the recipes measured on its metric have one backbone
    each: Dunnett's pooled seed variance has N - k = 0 degrees of freedom."""
    q = study.question
    if q is None:
        return []
    if QUESTION_METRICS[q.metric] == "pretrain":
        measured = [r for r in study.recipes if not r.external or (q.metric == "top1" and r.top1 is not None)]
    else:
        measured = [r for r in study.recipes if r.downstream]
    df = sum(len(r.seeds) for r in measured) - len(measured)
    if df >= 1:
        return []
    return [f"question: every recipe measured on {q.metric} has one seed, so the seed variance has 0 degrees of "
            f"freedom and the report cannot resolve whether {q.recipe} is {q.direction} than {study.reference}; "
            f"give the recipes 2+ seeds (seeds = [0, 1, 2])"]


def _teachers_first(recipes: tuple[Recipe, ...]) -> list[Recipe]:
    by_name = {r.name: r for r in recipes}
    out: list[Recipe] = []

    def add(r: Recipe) -> None:
        if r in out:
            return
        for t in r.teachers():
            add(by_name[t])
        out.append(r)

    for r in recipes:
        add(r)
    return out


def _file_identity(path: Path) -> dict:
    st = path.stat()
    return {"file": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _pretrain_config(recipe: Recipe, options: dict) -> dict:
    """The resolved pretrain config (the suite's own typed check, so a misspelled key or a
    value out of range stops the plan, naming the recipe)."""
    try:
        return load_config(recipe.config, options).to_dict()
    except ConfigError as e:
        raise StudyError(f"recipe {recipe.name} ({recipe.config}): {e}") from None


_DOWNSTREAM_CACHE: dict[Path, dict] = {}


def _downstream_config(config: Path, options: dict, task: str) -> dict:
    try:
        if config not in _DOWNSTREAM_CACHE:
            _DOWNSTREAM_CACHE[config] = read_config(config, f"{task} config").to_dict()
        values = _DOWNSTREAM_CACHE[config]
        checked = check_options(values, options, str(config))
    except ConfigFileError as e:
        raise StudyError(f"downstream.{task}: {e}") from None
    return {"values": values, "options": checked}


# --- where each job stands --------------------------------------------------------------

@dataclass(frozen=True)
class JobState:
    state: str                        # done, stale, running, failed, waiting, not started
    detail: str = ""                  # why (stale, failed: the last error line), the log for failed ones


def result_fingerprint(job: Job) -> str | None:
    """The fingerprint in the job's ``result.json`` (None: no result, or one the study did not make)."""
    path = job.work_dir / results.NAME
    if not path.is_file():
        return None
    try:
        res = results.read(path)
    except results.ResultError:
        return "unreadable"
    return (res.study or {}).get("fingerprint") or "none"


def report_done(job: Job) -> str | None:
    """The fingerprint of the report in the job's folder (written after the report itself)."""
    if not (job.work_dir / "report.json").is_file():
        return None
    return stamp_fingerprint(job) or "none"


def stamp_fingerprint(job: Job) -> str | None:
    try:
        return json.loads((job.work_dir / JOB_STAMP).read_text()).get("fingerprint")
    except (OSError, ValueError):
        return None


def is_done(job: Job) -> bool:
    if job.stage == "report":
        return report_done(job) == job.fingerprint
    return result_fingerprint(job) == job.fingerprint


def is_stale(job: Job) -> str | None:
    """Why the job's work dir holds a run that is not this plan's (None if it does not)."""
    fp = report_done(job) if job.stage == "report" else result_fingerprint(job)
    if fp is not None and fp != job.fingerprint:
        if fp == "unreadable":
            return "its result.json cannot be read"
        if fp == "none":
            return "its result was not made by this study"
        return "its config changed since its result"
    stamp = stamp_fingerprint(job)
    if fp is None and stamp is not None and stamp != job.fingerprint:
        return "its config changed since it started"
    return None


def last_events(plan: Plan) -> dict[str, dict]:
    """The last event of each job in the study's event log."""
    out: dict[str, dict] = {}
    if plan.events.exists():
        for rec in read_jsonl(plan.events).records:
            if isinstance(rec, dict) and "job" in rec:
                out[rec["job"]] = rec
    return out


def last_error(log: Path) -> str:
    """The line of a failed job's log that says why: its last ``error:`` line, else its last line."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - 64_000))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    for ln in reversed(lines):
        if ln.startswith("error:") or "Error:" in ln:
            return ln[:300]
    return lines[-1][:300] if lines else ""

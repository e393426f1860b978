"""The paper's tricks, named once: name -> the pretraining config keys it sets -> the paper's
section (He et al., CVPR 2019). The study designs read this table to make recipes, the result
record reads it to name the tricks of a run (derived from the run's resolved config), and the
report groups runs by those names.

Three kinds of entry:

* **on/off tricks** (§3, §5; ``bf16`` beside the paper's fp16): a resolved config has one on
  when every key of its ``sets`` is away from its off value: a switch (``True``) is set, a
  number (warmup epochs, smoothing eps, mixup alpha) is not 0, a teacher is given, a choice
  (``schedule.decay``, ``run.precision``) is the one the trick names. Keys a study adds to a
  trick (``trick_options``: the batch size of linear scaling, mixup's 200 epochs) set it up
  but do not tell whether it is on.
* **the variant** (§4, Figure 2): one categorical factor with levels A, B, C and D, not four
  tricks. Every recipe has exactly one. The reference level is B (torchvision's ResNet, the
  baseline of the suite's own recipes); a run of any other level carries that level's name
  (``resnet_a``, ``resnet_c``, ``resnet_d``) among its factors, so the report estimates each
  level against B as it estimates a trick.
* **bundles**: a name for tricks used together. ``efficient`` is §3.1's four (linear scaling,
  warmup, zero gamma, no bias decay) at the batch size of the paper's efficient configs, 1024.
  A design over ``resnet_d`` and ``efficient`` makes the 2x2, and the report estimates both
  main effects.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

TEACHER = "@teacher"   # in ``sets``: the design's teacher recipe (``teacher=`` in the design)


@dataclass(frozen=True)
class Trick:
    name: str
    section: str                      # He et al. 2019
    sets: Mapping[str, Any]           # pretraining config keys -> the value that switches it on
    kind: str = "trick"               # 'trick' | 'variant' | 'bundle'
    members: tuple[str, ...] = ()     # a bundle: the tricks it stands for
    extra: Mapping[str, Any] = field(default_factory=dict)  # a bundle: keys it sets besides its members'


VARIANTS = ("A", "B", "C", "D")
REFERENCE_VARIANT = "B"

_TABLE = (
    Trick("linear_scaling", "§3.1", {"optim.linear_scaling": True}),
    Trick("warmup", "§3.1", {"schedule.warmup_epochs": 5}),            # 5 epochs
    Trick("zero_gamma", "§3.1", {"model.zero_gamma": True}),
    Trick("no_bias_decay", "§3.1", {"optim.no_bias_decay": True}),
    Trick("fp16", "§3.2", {"run.precision": "fp16"}),
    Trick("bf16", "§3.2 (bf16 in place of fp16: no loss scaling)", {"run.precision": "bf16"}),
    *(Trick(f"resnet_{v.lower()}", "§4.1, Figure 2" + ("" if v != "A" else " (the original)"),
            {"model.variant": v}, kind="variant") for v in VARIANTS),
    Trick("cosine", "§5.1", {"schedule.decay": "cosine"}),
    Trick("label_smoothing", "§5.2", {"loss.label_smoothing": 0.1}),     # eps = 0.1
    Trick("distill", "§5.3", {"loss.distill_teacher": TEACHER}),        # T = 20 (loss.distill_temperature)
    Trick("mixup", "§5.4", {"loss.mixup_alpha": 0.2}),                   # alpha = 0.2
    Trick("efficient", "§3.1 (Table 3's efficient training without fp16)", {}, kind="bundle",
          members=("linear_scaling", "warmup", "zero_gamma", "no_bias_decay"), extra={"data.batch_size": 1024}),
)
TRICKS: dict[str, Trick] = {t.name: t for t in _TABLE}
ORDER = {name: i for i, name in enumerate(TRICKS)}


def variant_name(variant: str) -> str:
    """The factor name of a ResNet variant: ``resnet_d`` for D."""
    return f"resnet_{variant.lower()}"


def settings(name: str, table: Mapping[str, Trick] = TRICKS) -> dict[str, Any]:
    """The config keys a design sets to switch ``name`` on (a bundle: its members' and its own)."""
    trick = table[name]
    if trick.kind != "bundle":
        return dict(trick.sets)
    out: dict[str, Any] = {}
    for member in trick.members:
        out |= settings(member, table)
    return out | dict(trick.extra) | dict(trick.sets)


def _get(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None  # a key an older config did not have: off
        node = node[part]
    return node


def _on(value: Any, on: Any) -> bool:
    if value is None:
        return False
    if isinstance(on, bool):
        return value is True
    if isinstance(on, str) and on != TEACHER:
        return value == on
    if isinstance(on, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value != 0
    return True  # a teacher: any value


def is_on(trick: Trick, config: Mapping[str, Any]) -> bool:
    """Whether the resolved pretraining ``config`` (a dict) has the on/off ``trick`` on."""
    return all(_on(_get(config, key), value) for key, value in trick.sets.items())


def tricks_of(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The on/off tricks a resolved pretraining config (a dict) has on, in the paper's order. A
    config written by an older version of the suite reads the same: a key it lacks is off."""
    return tuple(t.name for t in _TABLE if t.kind == "trick" and is_on(t, config))


def variant_of(config: Mapping[str, Any]) -> str | None:
    v = _get(config, "model.variant")
    return v.upper() if isinstance(v, str) else None


def factors(tricks: Iterable[str], variant: str | None) -> tuple[str, ...]:
    """What tells a run's recipe apart in the analysis: its tricks, and its variant where it is
    not the reference (B), in the table's order (unknown names last, in the order given)."""
    names = list(tricks)
    if variant is not None and variant.upper() != REFERENCE_VARIANT:
        names.append(variant_name(variant))
    names = list(dict.fromkeys(names))  # a name given twice (a hand-written record's tricks) counts once
    return tuple(sorted(names, key=lambda n: ORDER.get(n, len(ORDER))))


def factor_members(sets: Iterable[Iterable[str]]) -> dict[str, frozenset[str]]:
    """The factors whose main effect a study can estimate, each with the names a recipe has
    when the factor is on: every name some recipe has, and every bundle whose members some
    recipe has all of."""
    sets = [frozenset(s) for s in sets]
    seen = sorted(set().union(*sets), key=lambda n: ORDER.get(n, len(ORDER))) if sets else []
    out = {n: frozenset({n}) for n in seen}
    for t in _TABLE:
        if t.kind == "bundle" and any(set(t.members) <= s for s in sets):
            out[t.name] = frozenset(t.members)
    return out

"""A sweep's spec file: read, checked, and turned into Optuna's samplers and pruners and into fit configs.

The spec (YAML, safe loading) says which fit config to start from, what to measure and which way,
the search space over dotted fit options, options fixed for every trial, the sampler, the pruner and
a budget checked from the static plan. Every mistake is one line naming the spec and the key.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import ArchError
from ..language.loader import check_aliases

DEFAULT_CONFIG = "experiments/base.yaml"
SAMPLERS = ("tpe", "random", "grid", "nsga2")
PRUNERS = ("median", "hyperband", "none")
# figures of the static plan (`summary --json`): usable as a budget and as a second objective
STATIC = {"macs": "MACs per image", "params": "parameters", "train_memory": "training memory in bytes"}
KEYS = ("config", "metric", "direction", "trials", "space", "variants", "fixed", "sampler", "pruner", "budget",
        "heartbeat", "seed")
VARIANT = "variant"  # the dimension that picks one of variants: (named sets of fit options)
DIRECTIONS = ("maximize", "minimize")
# 1e-3: text to PyYAML (YAML 1.1 wants a dot), a number to YAML 1.2 and editors
NUMBER_12 = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


@dataclass(frozen=True)
class Dimension:
    """One searched option: a choice list, or an int/float range (optionally on a log scale, or stepped)."""

    name: str
    kind: str  # "choice", "int" or "float"
    choices: tuple = ()
    low: float = 0
    high: float = 0
    log: bool = False
    step: float | None = None

    def suggest(self, trial) -> Any:
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def grid(self) -> list | None:
        """The values a grid walks through; None for a continuous range."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int" and not self.log:
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        return None

    def first(self) -> Any:
        return self.choices[0] if self.kind == "choice" else int(self.low) if self.kind == "int" else self.low


@dataclass
class Spec:
    path: Path
    config: Path  # the base fit config
    metrics: list[str]  # first: the measured metric; second (optional): another objective
    directions: list[str]
    trials: int
    space: list[Dimension]
    fixed: dict[str, Any] = field(default_factory=dict)
    sampler: str = "tpe"
    pruner: str = "median"
    budget: dict[str, float] = field(default_factory=dict)
    heartbeat: int = 60  # seconds between a running trial's heartbeats; twice this and it counts as dead
    seed: int | None = None  # the sampler's seed (worker i uses seed + i, so that workers differ)
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> its dotted fit options

    @property
    def name(self) -> str:
        return self.path.stem

    def grid_space(self) -> dict[str, list]:
        return {d.name: d.grid() for d in self.space}

    def points(self) -> int | None:
        """How many grid points there are (None unless the sampler is grid)."""
        return math.prod(len(v) for v in self.grid_space().values()) if self.sampler == "grid" else None


def _fail(spec: Path, key: str, what: str) -> ArchError:
    return ArchError(f"{spec}: {key}: {what}")


def _plain(spec: Path, key: str, value: Any) -> Any:
    """A choice or fixed value that YAML 1.1 and 1.2 read alike (where only a number can be meant,
    _number reads ``50e6`` as one)."""
    if isinstance(value, str) and NUMBER_12.fullmatch(value):
        number = repr(float(value))
        if "e" in number:  # PyYAML's float needs a dot and a signed exponent: 1.0e-10
            mantissa, exponent = number.split("e")
            number = f"{mantissa if '.' in mantissa else mantissa + '.0'}e{int(exponent):+d}"
        raise _fail(spec, key, f"'{value}' is text to PyYAML (YAML 1.1) but a number to YAML 1.2: write {number}")
    return value


def _number(spec: Path, key: str, value: Any) -> float:
    if isinstance(value, str):  # PyYAML 1.1 reads 50e6 as a string; a number is what is meant
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(spec, key, f"expected a number, got {value!r}")
    return value


def dimension(spec: Path, name: str, value: Any) -> Dimension:
    key = f"space.{name}"
    if isinstance(value, list):
        if not value:
            raise _fail(spec, key, "empty choice list")
        if not all(v is None or isinstance(v, (str, int, float, bool)) for v in value):
            raise _fail(spec, key, "choices must be plain values (text, numbers, true/false, null); "
                                   "for a mapping option write its parts as dotted keys")
        for choice in value:
            _plain(spec, key, choice)
        if len(set(map(repr, value))) != len(value):
            raise _fail(spec, key, f"a choice is listed twice in {value}")
        return Dimension(name, "choice", tuple(value))
    if not isinstance(value, dict) or len({"int", "float"} & set(value)) != 1:
        raise _fail(spec, key, "expected a choice list [a, b, ...], {int: [low, high]} or {float: [low, high]}")
    kind = "int" if "int" in value else "float"
    unknown = set(value) - {kind, "log", "step"}
    if unknown:
        raise _fail(spec, key, f"unknown setting '{sorted(unknown)[0]}'; a range takes {kind}, log, step")
    bounds = value[kind]
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise _fail(spec, key, f"{kind}: expected [low, high], got {bounds!r}")
    low, high = (_number(spec, key, b) for b in bounds)
    if kind == "int" and not all(float(b).is_integer() for b in (low, high)):
        raise _fail(spec, key, f"int: expected whole numbers, got {bounds}")
    if low > high:
        raise _fail(spec, key, f"inverted range: low {bounds[0]} is above high {bounds[1]}")
    if kind == "float" and low == high:
        raise _fail(spec, key, f"empty range [{bounds[0]}, {bounds[1]}]: use fixed: for a single value")
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise _fail(spec, key, f"log: expected true or false, got {log!r}")
    if log and low <= 0:
        raise _fail(spec, key, f"a log range must start above 0, got {bounds[0]}")
    step = _number(spec, key, value["step"]) if value.get("step") is not None else None
    if step is not None and (step <= 0 or log):
        raise _fail(spec, key, "step must be above 0 and cannot go with log")
    return Dimension(name, kind, low=low, high=high, log=log, step=step)


def _option_name(spec: Path, where: str, name: Any) -> str:
    if not isinstance(name, str) or not name or name.startswith("-") or any(not p for p in name.split(".")):
        raise _fail(spec, where, f"expected a dotted fit option such as model.optimizer.lr, got {name!r}")
    return name


def _variants(path: Path, value: Any) -> dict[str, dict[str, Any]]:
    """``variants: {plain-20: {model.arch: ...}, ...}``: named sets of fit options, one chosen per trial."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not value or \
            not all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items()):
        raise _fail(path, "variants", "expected a mapping of names to mappings of dotted fit options")
    for name, options in value.items():
        for key, option in options.items():
            _option_name(path, f"variants.{name}", key)
            _plain(path, f"variants.{name}.{key}", option)
    return value


def load_spec(path: str | Path, trials: int | None = None) -> Spec:
    """Read and check a spec file; ``trials`` (from the command line) replaces the file's."""
    path = Path(path)
    if not path.is_file():
        raise ArchError(f"{path}: no such sweep spec file")
    text = path.read_text()
    check_aliases(text, str(path))  # an alias bomb: one line, not minutes of expansion
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ArchError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    if not isinstance(data, dict):
        raise ArchError(f"{path}: expected a mapping with metric:, space: ... (see README, Sweeps)")
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        from ..errors import close_matches

        raise _fail(path, str(unknown[0]), f"unknown key{close_matches(str(unknown[0]), KEYS)}")
    config = Path(data.get("config") or DEFAULT_CONFIG)
    if not config.is_file():
        raise _fail(path, "config", f"no fit config file {config}")
    metrics = data.get("metric", "val/acc")
    metrics = [metrics] if isinstance(metrics, str) else metrics
    if not isinstance(metrics, list) or not 1 <= len(metrics) <= 2 or not all(isinstance(m, str) for m in metrics):
        raise _fail(path, "metric", f"expected a metric name such as val/acc, or two names, got {metrics!r}")
    if metrics[0] in STATIC:
        raise _fail(path, "metric", f"the first objective is a trained metric such as val/acc, not {metrics[0]}")
    directions = data.get("direction", "maximize" if metrics[0].endswith("acc") else "minimize")
    directions = [directions] if isinstance(directions, str) else directions
    if isinstance(directions, list) and len(directions) == 1 and len(metrics) == 2:
        directions = [directions[0], "minimize"]  # the second objective (MACs, parameters) is a cost
    if not isinstance(directions, list) or len(directions) != len(metrics) or \
            not all(d in DIRECTIONS for d in directions):
        raise _fail(path, "direction", f"expected maximize or minimize (one per metric), got {data.get('direction')!r}")
    variants = _variants(path, data.get("variants"))
    space = data.get("space") or {}
    if not isinstance(space, dict) or not (space or variants):
        raise _fail(path, "space", "expected a mapping of dotted fit options to choices or ranges")
    dims = [dimension(path, _option_name(path, "space", k), v) for k, v in space.items()]
    if variants:  # one more choice: which named set of options
        dims.insert(0, Dimension(VARIANT, "choice", tuple(variants)))
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise _fail(path, "fixed", "expected a mapping of dotted fit options to values")
    for key, value in fixed.items():
        _option_name(path, "fixed", key)
        _plain(path, f"fixed.{key}", value)
        if key in space:
            raise _fail(path, f"fixed.{key}", "is also in space:")
    sampler = data.get("sampler") or ("nsga2" if len(metrics) == 2 else "tpe")
    if sampler not in SAMPLERS:
        raise _fail(path, "sampler", f"unknown sampler '{sampler}'; samplers: {', '.join(SAMPLERS)}")
    pruner = str(data.get("pruner") or "median")
    if pruner not in PRUNERS:
        raise _fail(path, "pruner", f"unknown pruner '{pruner}'; pruners: {', '.join(PRUNERS)}")
    budget = data.get("budget") or {}
    if not isinstance(budget, dict):
        raise _fail(path, "budget", f"expected a mapping such as {{macs: 300e6, params: 2e6}}, got {budget!r}")
    for key, value in budget.items():
        if key not in STATIC:
            raise _fail(path, f"budget.{key}", f"unknown budget; budgets: {', '.join(STATIC)}")
        if _number(path, f"budget.{key}", value) <= 0:
            raise _fail(path, f"budget.{key}", f"expected a positive number, got {value}")
    budget = {k: _number(path, k, v) for k, v in budget.items()}
    heartbeat = data.get("heartbeat", 60)
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, int) or heartbeat < 1:
        raise _fail(path, "heartbeat", f"expected whole seconds >= 1, got {heartbeat!r}")
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _fail(path, "seed", f"expected a whole number, got {seed!r}")
    spec = Spec(path, config, metrics, directions, 0, dims, fixed, sampler, pruner, budget, heartbeat, seed, variants)
    if sampler == "grid":
        continuous = [d.name for d in dims if d.grid() is None]
        if continuous:
            raise _fail(path, f"space.{continuous[0]}", "a grid needs choices or an int range without log")
    count = trials if trials is not None else data.get("trials", spec.points() or 20)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise _fail(path, "trials", f"expected a whole number >= 1, got {count!r}")
    spec.trials = min(count, spec.points() or count)  # a grid is walked once
    return spec


def make_sampler(spec: Spec, worker: int = 0):
    import optuna

    seed = None if spec.seed is None else spec.seed + worker

    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(spec.grid_space(), seed=seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(name: str):
    import optuna

    return {"median": optuna.pruners.MedianPruner, "hyperband": optuna.pruners.HyperbandPruner,
            "none": optuna.pruners.NopPruner}[name]()

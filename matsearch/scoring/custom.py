"""Custom fitness functions written in Python, by registered name or by dotted path.

A fitness function has the signature ``fn(relaxed_structure, results) -> float | dict[str, float]``.
`results` is the plain dict built by `fitness_inputs`:

=========================  ==================================================================
key                        meaning
=========================  ==================================================================
energy_per_atom            relaxed MLIP energy, eV/atom
initial_energy_per_atom    MLIP energy of the proposed structure, eV/atom
e_above_hull               energy above the reference hull, eV/atom
formation_energy           formation energy, eV/atom (None when not scored)
deformation_energy         E_proposed − E_relaxed, eV/atom (None when not scored)
scores                     every score computed so far, by objective name
converged, relax_steps     relaxation status
forces_max                 largest atomic force at the end of the relaxation, eV/Å (or None)
stress                     3x3 stress at the relaxed structure, GPa (or None)
magmoms                    magnetic moment per site, μB (or None)
initial_structure          the proposed (unrelaxed) pymatgen Structure
formula, generation, id    the candidate's reduced formula, generation and id
=========================  ==================================================================

A float becomes the score ``custom:<name>``; a dict ``{key: value}`` becomes the scores
``custom:<name>.<key>``. A function that raises, or returns something else or a non-finite
number, never stops the run: the candidate gets no score for it and the reason is recorded.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import numbers
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from pymatgen.core import Structure

from matsearch.candidate import Candidate
from matsearch.errors import SpecError
from matsearch.results import RelaxResult

FitnessFn = Callable[[Structure, dict[str, Any]], float | Mapping[str, float]]
F = TypeVar("F", bound=Callable[..., Any])

SCORE_PREFIX = "custom:"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REGISTRY: dict[str, FitnessFn] = {}


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"fitness name {name!r} must be a Python-style identifier (letters, digits, underscore)"
        )


def register_fitness(name: str) -> Callable[[F], F]:
    """Decorator that registers a fitness function under `name` (used as ``custom:<name>``).

    >>> @register_fitness("density")
    ... def density(structure, results):
    ...     return structure.density  # g/cm³
    """
    _check_name(name)

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise TypeError(f"@register_fitness('{name}') must decorate a function, got {fn!r}")
        known = _REGISTRY.get(name)
        if known is not None and _qualified(known) != _qualified(fn):
            raise ValueError(
                f"fitness name '{name}' is already registered by {_qualified(known)}; pick another"
            )
        _REGISTRY[name] = fn
        return fn

    return decorate


def registered_fitness() -> dict[str, FitnessFn]:
    """The registered fitness functions by name (a copy)."""
    return dict(_REGISTRY)


def _qualified(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


@contextmanager
def _cwd_importable() -> Iterator[None]:
    """Let modules in the current folder be imported, as `python -m` does, for one import."""
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _import(module_name: str) -> ModuleType:
    """Import a dotted module name, or a ``.py`` file path (relative to the current folder)."""
    if not module_name.endswith(".py"):
        with _cwd_importable():
            return importlib.import_module(module_name)
    path = Path(module_name).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no file {path}")
    unique = "matsearch_custom_fitness_" + re.sub(r"\W", "_", str(path))
    if unique in sys.modules:
        return sys.modules[unique]
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[unique]
        raise
    return module


def load_fitness(reference: str) -> FitnessFn:
    """The fitness function that `reference` names.

    `reference` is a registered name, "package.module:function" (the current folder is searched
    too, as with ``python -m``) or "path/to/file.py:function". Importing the module also registers
    any ``@register_fitness`` functions it defines. Raises SpecError with one sentence when the
    module cannot be imported, lacks the function, or the name is unknown.
    """
    if not isinstance(reference, str) or not reference.strip():
        raise SpecError(f"custom fitness {reference!r} must be a name or 'package.module:function'")
    if ":" not in reference:
        if reference in _REGISTRY:
            return _REGISTRY[reference]
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise SpecError(
            f"custom fitness '{reference}' is not registered (registered: {known}); give a dotted "
            "path such as 'mypackage.fitness:density'"
        )
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute or ":" in attribute:
        raise SpecError(
            f"custom fitness '{reference}' must look like 'package.module:function' or "
            "'path/to/file.py:function'"
        )
    try:
        module = _import(module_name)
    except Exception as exc:  # ImportError, or any error raised while the module runs
        raise SpecError(
            f"custom fitness '{reference}': cannot import module '{module_name}' "
            f"({type(exc).__name__}: {exc}); check the path and that it is importable"
        ) from exc
    fn: Any = module
    for part in attribute.split("."):
        if not hasattr(fn, part):
            raise SpecError(
                f"custom fitness '{reference}': module '{module_name}' has no attribute '{attribute}'"
            )
        fn = getattr(fn, part)
    if not callable(fn):
        raise SpecError(f"custom fitness '{reference}' is not a function (it is {type(fn).__name__})")
    return fn


def load_fitness_table(table: Mapping[str, str]) -> dict[str, FitnessFn]:
    """Load the spec's ``custom: {name: reference}`` table; the names must be identifiers."""
    functions = {}
    for name, reference in table.items():
        try:
            _check_name(name)
        except ValueError as exc:
            raise SpecError(f"custom: {exc}") from None
        functions[name] = load_fitness(reference)
    return functions


@dataclass
class FitnessResult:
    """Scores from one fitness function (keys ``custom:<name>[.<key>]``) or the reason it failed."""

    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def evaluate_fitness(
    name: str, fn: FitnessFn, structure: Structure, results: Mapping[str, Any]
) -> FitnessResult:
    """Call `fn` on a copy of `structure` and `results`; never raises."""
    try:
        value = fn(structure.copy(), dict(results))
    except Exception as exc:  # a user's function must not stop the run
        return FitnessResult(error=f"custom fitness '{name}' raised {type(exc).__name__}: {exc}")
    if isinstance(value, Mapping):
        scores = {}
        for key, item in value.items():
            number = _as_number(item)
            if not isinstance(key, str) or number is None:
                return FitnessResult(
                    error=f"custom fitness '{name}' returned {{{key!r}: {item!r}}}; every key must "
                    "be a string and every value a finite number"
                )
            scores[f"{SCORE_PREFIX}{name}.{key}"] = number
        return FitnessResult(scores=scores)
    number = _as_number(value)
    if number is None:
        return FitnessResult(
            error=f"custom fitness '{name}' returned {value!r}; it must return a finite number "
            "or a dict of finite numbers"
        )
    return FitnessResult(scores={f"{SCORE_PREFIX}{name}": number})


def fitness_inputs(candidate: Candidate, relax_result: RelaxResult | None = None) -> dict[str, Any]:
    """The `results` dict a fitness function receives (keys and units in the module docstring)."""
    return {
        "energy_per_atom": candidate.energy_per_atom,
        "initial_energy_per_atom": candidate.initial_energy_per_atom,
        "e_above_hull": candidate.e_above_hull,
        "formation_energy": candidate.scores.get("formation_energy"),
        "deformation_energy": candidate.scores.get("deformation_energy"),
        "scores": dict(candidate.scores),
        "converged": candidate.converged,
        "relax_steps": candidate.relax_steps,
        "forces_max": None if relax_result is None else relax_result.forces_max,
        "stress": None if relax_result is None else relax_result.stress_gpa,
        "magmoms": None if relax_result is None else relax_result.magmoms,
        "initial_structure": candidate.structure,
        "formula": candidate.formula,
        "generation": candidate.generation,
        "id": candidate.id,
    }


def apply_custom_fitness(
    candidate: Candidate,
    functions: Mapping[str, FitnessFn],
    relax_result: RelaxResult | None = None,
) -> dict[str, str]:
    """Score a relaxed candidate with every function; returns {name: reason} for those that failed.

    Scores go into ``candidate.scores`` and failure reasons into
    ``candidate.extra["custom_fitness_errors"]``. Candidates that were not relaxed are skipped.
    """
    if candidate.relaxed is None:
        return {}
    results = fitness_inputs(candidate, relax_result)
    errors: dict[str, str] = {}
    for name, fn in functions.items():
        outcome = evaluate_fitness(name, fn, candidate.relaxed, results)
        candidate.scores.update(outcome.scores)
        if outcome.error is not None:
            errors[name] = outcome.error
    if errors:
        candidate.extra["custom_fitness_errors"] = errors
    return errors

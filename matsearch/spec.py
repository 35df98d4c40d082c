"""The run spec: a YAML file validated by pydantic. Every field has a type, a default and a description.

Errors are turned into one sentence that names the key and what is allowed (`SpecError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pymatgen.core import Composition, Element

from matsearch.data import HULL_REFERENCES
from matsearch.errors import SpecError
from matsearch.model_names import model_names
from matsearch.objectives import CUSTOM_PREFIX, OBJECTIVES
from matsearch.relax_defaults import (
    BATCH_ATOMS,
    FMAX_EV_PER_A,
    MAX_BATCH_MEMORY_GB,
    MAX_STEPS,
    PRERELAX_FMAX_EV_PER_A,
    PRERELAX_MODEL,
    TIMEOUT_S,
    RelaxSettings,
)

MAX_SPEC_BYTES = 1_000_000  # a spec file larger than this is refused before it is parsed
MAX_SPEC_NODES = 100_000  # values in the loaded YAML (after anchors and aliases are expanded)
MAX_POPULATION = 10_000  # upper bound of population_size and children_per_generation
MAX_TARGET_ATOMS = 1000  # atoms of one element in a CSP target formula


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


def _check_element(symbol: str) -> str:
    if not Element.is_valid_symbol(symbol):
        raise ValueError(f"'{symbol}' is not a chemical element symbol")
    return symbol


class Chemistry(_Strict):
    """Which elements children may contain and how big a cell may be."""

    elements: list[str] = Field(default_factory=list, description="Allowed element symbols.")
    systems: list[str] = Field(
        default_factory=list,
        description="Allowed chemical systems such as 'Li-Fe-O'; a child must lie within one of them.",
    )
    max_atoms: int = Field(20, ge=1, le=200, description="Maximum atoms per cell.")
    max_elements: int = Field(4, ge=1, le=10, description="Maximum distinct elements per structure.")

    @field_validator("elements")
    @classmethod
    def _elements_valid(cls, value: list[str]) -> list[str]:
        return [_check_element(s) for s in value]

    @field_validator("systems")
    @classmethod
    def _systems_valid(cls, value: list[str]) -> list[str]:
        for system in value:
            for symbol in system.split("-"):
                _check_element(symbol)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Chemistry:
        if not self.elements and not self.systems:
            raise ValueError("give at least one element in 'elements' or one chemical system in 'systems'")
        return self

    @property
    def allowed_elements(self) -> tuple[str, ...]:
        """Union of `elements` and the elements of every system, sorted by atomic number."""
        symbols = set(self.elements)
        for system in self.systems:
            symbols.update(system.split("-"))
        return tuple(sorted(symbols, key=lambda s: Element(s).Z))


class Task(_Strict):
    """`generate`: free composition within the chemistry. `csp`: crystal structure prediction."""

    kind: Literal["generate", "csp"] = Field("generate", description="Search task.")
    target: str | None = Field(
        None,
        description="CSP target composition, e.g. 'NaCl' (csp only); cells hold 1 to "
        "chemistry.max_atoms // atoms-per-formula formula units.",
    )
    known_structure: Path | None = Field(
        None, description="CSP: a CIF/POSCAR of the known answer, to report match and RMSD."
    )
    template_share: float = Field(
        0.75,
        ge=0,
        le=1,
        description="CSP only: share of generation 0 taken from known structures of the target's "
        "stoichiometry type decorated with its elements (never the target's own formula), best "
        "ranked first; random starts fill the rest, and all of it when no template exists.",
    )
    template_operator_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="CSP only: share of each later generation's children taken from the next ranked "
        "templates, while any are left.",
    )

    @model_validator(mode="after")
    def _target_for_csp(self) -> Task:
        if self.kind == "csp" and not self.target:
            raise ValueError("a 'csp' task needs 'target', a composition such as 'NaCl'")
        if self.kind == "generate" and self.target:
            raise ValueError("'target' is only allowed when kind is 'csp'")
        if self.target:
            try:
                amounts = Composition(self.target).values()
            except Exception as exc:
                raise ValueError(f"'{self.target}' is not a valid composition") from exc
            if not amounts or not all(0 < a <= MAX_TARGET_ATOMS for a in amounts):
                raise ValueError(
                    f"'{self.target}' is not a composition with 0 to {MAX_TARGET_ATOMS} atoms per element"
                )
        return self

    @property
    def target_composition(self) -> Composition | None:
        return Composition(self.target).reduced_composition if self.target else None


# names of proposers.builtin.OPERATORS (the spec may not import proposers; a test keeps them equal)
BUILTIN_OPERATORS = ("substitution", "strain", "swap", "crossover", "random")


class BuiltinProposerSpec(_Strict):
    """Offline chemistry operators (no LLM)."""

    kind: Literal["builtin"] = Field("builtin", description="Offline chemistry operators.")
    fraction: float = Field(1.0, gt=0, description="Share of children from this proposer.")
    weights: dict[str, float] | None = Field(
        None,
        description=f"Operator weights: {', '.join(BUILTIN_OPERATORS)}.",
    )

    @field_validator("weights")
    @classmethod
    def _known_operators(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for key in value or {}:
            if key not in BUILTIN_OPERATORS:
                raise ValueError(f"unknown operator '{key}'; allowed: {', '.join(sorted(BUILTIN_OPERATORS))}")
        if value is not None:
            negative = {k: w for k, w in value.items() if w < 0}
            if negative:
                raise ValueError(f"operator weights must not be negative: {negative}")
            if not any(w > 0 for w in value.values()):
                raise ValueError("give at least one operator a positive weight")
        return value


class _LLMProposerSpec(_Strict):
    fraction: float = Field(1.0, gt=0, description="Share of children from this proposer.")
    model: str = Field(..., description="Model name (openai) or local path / hub id (hf).")
    temperature: float = Field(1.0, ge=0, le=2, description="Sampling temperature of the model.")
    max_tokens: int = Field(2048, ge=16, le=1_000_000, description="Most tokens in one answer.")
    k_parents: int = Field(2, ge=1, le=8, description="Parents shown in each prompt.")
    structures_per_prompt: int = Field(2, ge=1, le=10, description="Children asked of each prompt.")
    repair_attempts: int = Field(
        1, ge=0, le=3, description="Repair prompts for an answer with unreadable or invalid structures."
    )
    templates: Path | None = Field(None, description="Directory of your own prompt templates.")
    objective_text: str | None = Field(None, description="Extra goal stated in the prompt.")
    template_examples: int = Field(
        0,
        ge=0,
        le=8,
        description="CSP: best-ranked decorated templates (known structures of the target's "
        "stoichiometry type with its elements) shown in each prompt as examples; 0: none (each "
        "example costs prompt tokens).",
    )


class OpenAIProposerSpec(_LLMProposerSpec):
    """Any OpenAI-compatible chat server: OpenAI, vLLM, SGLang, Ollama, llama.cpp, transformers serve."""

    kind: Literal["openai"] = Field("openai", description="An OpenAI-compatible chat server.")
    base_url: str | None = Field(None, description="Server URL; default: $OPENAI_BASE_URL or OpenAI.")
    api_key: SecretStr | None = Field(None, description="API key; default: $OPENAI_API_KEY.")
    max_concurrency: int = Field(4, ge=1, le=256, description="Requests in flight at once.")
    timeout_s: float = Field(120.0, gt=0, description="Wall-clock limit of one request, s.")
    max_retries: int = Field(
        5, ge=0, le=20, description="Retries of a request that failed for a transient reason."
    )
    structured_output: bool = Field(
        True,
        description="Ask for answers constrained to a JSON schema (response_format); servers that "
        "refuse it are answered in free text.",
    )


class HFProposerSpec(_LLMProposerSpec):
    """A transformers model in-process."""

    kind: Literal["hf"] = Field("hf", description="A transformers model in this process.")
    device: str | None = Field(None, description="'cpu', 'cuda', 'cuda:1'; default: cuda if available.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="Weight dtype; 'auto' takes the checkpoint's own."
    )
    batch_size: int = Field(4, ge=1, le=1024, description="Prompts generated together.")


ProposerSpec = Annotated[
    BuiltinProposerSpec | OpenAIProposerSpec | HFProposerSpec, Field(discriminator="kind")
]
# each proposer's `kind`, from the union above (proposers.registry.PROPOSERS: the same; a test checks)
PROPOSER_KINDS = tuple(model.model_fields["kind"].default for model in get_args(get_args(ProposerSpec)[0]))


class MLIPSpec(_Strict):
    """Which MLIP relaxes and scores candidates."""

    backend: Literal["matsearch", "chgnet"] = Field(
        "matsearch",
        description="'matsearch' (in-house batched model) or 'chgnet' (reference package).",
    )
    model: str = Field("default", description="Model name or path to a fine-tuned model file.")
    device: str | None = Field(None, description="'cpu' or 'cuda'; default: cuda when available.")
    fmax: float = Field(FMAX_EV_PER_A, gt=0, description="Force convergence, eV/Å.")
    steps: int = Field(MAX_STEPS, ge=1, le=100_000, description="Maximum optimiser steps per structure.")
    timeout_s: float = Field(TIMEOUT_S, gt=0, description="Wall-clock limit per structure's relaxation, s.")
    batch_size: int = Field(32, ge=1, le=4096, description="Structures relaxed (and committed) together.")
    batch_atoms: int = Field(
        BATCH_ATOMS,
        ge=1,
        le=1_000_000,
        description="matsearch backend: most atoms in one batched model call (the memory budget can "
        "lower it; raise it on a GPU).",
    )
    max_batch_memory_gb: float = Field(
        MAX_BATCH_MEMORY_GB,
        gt=0,
        description="matsearch backend: estimated peak memory of one batched model call, GB; "
        "a structure that alone needs more fails with the reason.",
    )
    prerelax: str | None = Field(
        PRERELAX_MODEL,
        description="matsearch backend: a faster model (name or file) that relaxes each structure "
        "first, to prerelax_fmax; `model` then finishes and gives every energy. null, or the same "
        "model as `model`: `model` alone.",
    )
    prerelax_fmax: float = Field(
        PRERELAX_FMAX_EV_PER_A, gt=0, description="Force at which the prerelax model hands over, eV/Å."
    )

    @model_validator(mode="after")
    def _backend_options(self) -> MLIPSpec:
        """Options the chosen backend would ignore are refused (model files: preflight.py)."""
        if self.backend == "chgnet":
            for key in ("model", "device", "batch_atoms", "max_batch_memory_gb", "prerelax", "prerelax_fmax"):
                if getattr(self, key) != MLIPSpec.model_fields[key].default:
                    raise ValueError(
                        f"'{key}' is not used by backend 'chgnet' (it runs the chgnet package's "
                        "own model); remove it or use backend 'matsearch'"
                    )
        return self

    def relax_settings(self) -> RelaxSettings:
        """This section's relaxation settings as the record the relaxers take."""
        return RelaxSettings(
            fmax=self.fmax,
            steps=self.steps,
            timeout_s=self.timeout_s,
            batch_atoms=self.batch_atoms,
            max_batch_memory_gb=self.max_batch_memory_gb,
            prerelax_model=self.prerelax,
            prerelax_fmax=self.prerelax_fmax,
        )


class ExecutorSpec(_Strict):
    """Where relaxations run. `local`: in this process. `ray`: actors on a Ray cluster."""

    kind: Literal["local", "ray"] = Field("local", description="'local' or 'ray'.")
    address: str | None = Field(
        None,
        description="Ray cluster address ('auto', 'ray://host:10001'); default: start a local Ray.",
    )
    workers: int = Field(2, ge=1, le=100_000, description="Ray actors, each holding one model.")
    gpus_per_worker: float = Field(0.0, ge=0, description="GPUs per Ray actor (0 on CPU machines).")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs per Ray actor.")


class Objective(_Strict):
    """One objective. `direction` min/max, or `target` for 'as close as possible to'."""

    name: str = Field(
        ...,
        description=f"One of {', '.join(OBJECTIVES)}, or 'custom:<name>' for a function in `custom`.",
    )
    direction: Literal["min", "max"] | None = Field(
        None,
        description="'min' or 'max'; default: the builtin objective's own (objectives.OBJECTIVES), "
        "'min' for a custom one. Not with `target`.",
    )
    target: float | None = Field(None, description="Target value; the objective becomes |x − target|.")
    weight: float = Field(1.0, ge=0, description="Weight in the weighted-sum selection.")
    bounds: tuple[float | None, float | None] | None = Field(
        None, description="Constraint [lower, upper] (null for open); violators rank last."
    )

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in OBJECTIVES and not value.startswith(CUSTOM_PREFIX):
            raise ValueError(
                f"unknown objective '{value}'; allowed: {', '.join(OBJECTIVES)}, or custom:<name>"
            )
        return value

    @model_validator(mode="after")
    def _direction_or_target(self) -> Objective:
        if self.direction is None and self.target is None:
            builtin = OBJECTIVES.get(self.name)
            self.direction = "min" if builtin is None else builtin.direction
        if self.direction is not None and self.target is not None:
            raise ValueError(f"objective '{self.name}' has both 'direction' and 'target'; give one")
        low, high = self.bounds or (None, None)
        if low is not None and high is not None and low > high:
            raise ValueError(
                f"objective '{self.name}' has bounds [{low}, {high}]: the lower bound is above the "
                "upper one, so every candidate would violate them"
            )
        return self

    @property
    def custom_function(self) -> str | None:
        """For 'custom:density' or 'custom:props.gap', the function name ('density', 'props')."""
        if not self.name.startswith(CUSTOM_PREFIX):
            return None
        return self.name.removeprefix(CUSTOM_PREFIX).split(".", 1)[0]


class BulkModulusSpec(_Strict):
    """Equation-of-state fit over fixed-cell relaxations around the relaxed volume."""

    strain: float = Field(0.06, gt=0, lt=0.3, description="Volume range ±strain (0.06 = ±6 %).")
    n_points: int = Field(7, ge=5, le=21, description="Volumes in the scan.")
    fmax: float = Field(
        FMAX_EV_PER_A, gt=0, description="Force convergence of each fixed-cell relaxation, eV/Å."
    )
    steps: int = Field(200, ge=1, description="Step cap of each fixed-cell relaxation.")
    eos: Literal["birch_murnaghan", "murnaghan", "vinet"] = Field(
        "birch_murnaghan", description="Equation of state fitted to the energy-volume points."
    )


class StrainEnergySpec(_Strict):
    """Energy per atom (eV/atom) to impose a strain after internal relaxation."""

    strain: list[float] = Field(
        default_factory=lambda: [0.02, 0.02, 0.02, 0.0, 0.0, 0.0],
        min_length=6,
        max_length=6,
        description="Voigt strain (xx, yy, zz, yz, xz, xy; engineering shears).",
    )
    fmax: float = Field(
        FMAX_EV_PER_A, gt=0, description="Force convergence of the internal relaxation, eV/Å."
    )
    steps: int = Field(200, ge=1, description="Step cap of the internal relaxation.")


class Scoring(_Strict):
    """Settings of the property objectives (computed only when they are objectives)."""

    bulk_modulus: BulkModulusSpec = Field(
        default_factory=BulkModulusSpec, description="Settings of the bulk_modulus objective."
    )
    strain_energy: StrainEnergySpec = Field(
        default_factory=StrainEnergySpec, description="Settings of the strain_energy objective."
    )


class Metrics(_Strict):
    """Per-generation metrics."""

    stable_threshold: float = Field(0.0, description="e_above_hull (eV/atom) counted as stable for S.U.N.")
    hypervolume_reference: dict[str, float] = Field(
        default_factory=dict, description="Fixed hypervolume reference per objective name."
    )


class Matching(_Strict):
    """StructureMatcher tolerances for dedup, duplicates after relaxation and known-vs-new
    (defaults: pymatgen's own)."""

    ltol: float = Field(0.2, gt=0, lt=1, description="Fractional lattice-length tolerance.")
    stol: float = Field(0.3, gt=0, lt=1, description="Site tolerance, fraction of (V/n)^(1/3).")
    angle_tol: float = Field(5.0, gt=0, lt=30, description="Lattice-angle tolerance, degrees.")


class Discovery(_Strict):
    """What counts as a discovery: new (not a known material), unique after relaxation, stable
    and not an artefact. Elemental and molecular (0-dimensional) candidates are artefacts: never
    counted in S.U.N., not exported by default, and ranked after every other candidate in
    selection, unless admitted here."""

    admit: list[Literal["elemental", "molecular"]] = Field(
        default_factory=list, description="Artefact flags to count as discoveries anyway."
    )


class Validity(_Strict):
    """Validity checks applied to every child before relaxation."""

    charge_neutrality: bool = Field(
        True,
        description="Ionic compositions (O or a halogen) need an oxidation-state assignment summing to 0.",
    )
    min_distance_factor: float = Field(
        0.5, gt=0, le=1.5, description="Minimum distance as a fraction of the covalent-radius sum."
    )
    volume_ratio: tuple[float, float] = Field(
        (0.25, 3.0),
        description="Allowed cell volume / Σ of the elements' own ground-state volumes per atom.",
    )

    @field_validator("volume_ratio")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 < low < high:
            raise ValueError(
                f"[{low}, {high}] is not a range of volume ratios: give [lower, upper] with "
                "0 < lower < upper, or every candidate is rejected"
            )
        return value


class Reference(_Strict):
    """Reference data for energy above hull."""

    hull: str = Field(
        "mp20-subset",
        description="A registry name (data.HULL_REFERENCES) or a CSV/JSON file of formation energies.",
    )

    elemental: Literal["dft", "mlip"] = Field(
        "dft",
        description="Elemental references μ_i: 'dft' (MP 2023-02-07) or 'mlip' (relaxed with the MLIP).",
    )
    known: Literal["mp20", "mp20-full"] = Field(
        "mp20",
        description="Known-materials index for seeds and known-vs-new: 'mp20' (shipped, 33,548 MP-20 "
        "crystals) or 'mp20-full' (the complete CDVAE split, 45,231; mirror, cache or download).",
    )


class RunSpec(_Strict):
    """A whole search. Load from YAML with `load_spec(path)`."""

    name: str = Field(
        ...,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        max_length=100,
        description="Run name (folder name).",
    )
    seed: int = Field(0, ge=0, lt=2**63, description="Random seed; a seeded run is reproducible.")
    chemistry: Chemistry = Field(..., description="Allowed elements or systems and cell size.")
    task: Task = Field(default_factory=Task, description="Free generation or CSP of one composition.")
    population_size: int = Field(16, ge=1, le=MAX_POPULATION, description="Survivors kept each generation.")
    children_per_generation: int = Field(
        16, ge=1, le=MAX_POPULATION, description="Children proposed each generation."
    )
    generations: int = Field(5, ge=0, le=100_000, description="Generations after the initial population.")
    proposers: list[ProposerSpec] = Field(
        default_factory=lambda: [BuiltinProposerSpec()], min_length=1, description="Proposer mix."
    )
    mlip: MLIPSpec = Field(default_factory=MLIPSpec, description="The MLIP that relaxes and scores.")
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec, description="Where relaxations run.")
    objectives: list[Objective] = Field(
        default_factory=lambda: [Objective(name="e_above_hull", direction="min")],
        min_length=1,
        description="What selection optimises; default: e_above_hull, minimised.",
    )
    selection: Literal["pareto", "weighted"] = Field("pareto", description="Survivor selection.")
    custom: dict[str, str] = Field(
        default_factory=dict,
        description="Custom fitness: name → 'pkg.module:function', 'file.py:function' or a registered name.",
    )
    scoring: Scoring = Field(default_factory=Scoring, description="Settings of the property objectives.")
    metrics: Metrics = Field(default_factory=Metrics, description="Per-generation metric settings.")
    matching: Matching = Field(
        default_factory=Matching, description="StructureMatcher tolerances (dedup, known vs new)."
    )
    discovery: Discovery = Field(default_factory=Discovery, description="Artefacts admitted as discoveries.")
    validity: Validity = Field(default_factory=Validity, description="Checks before relaxation.")
    reference: Reference = Field(
        default_factory=Reference, description="Hull, elemental and known-materials references."
    )
    output: Path = Field(Path("runs"), description="Folder that holds runs/<name>/.")

    @field_validator("output")
    @classmethod
    def _usable_folder_name(cls, value: Path) -> Path:
        if "\x00" in str(value):
            raise ValueError("the folder name contains a NUL character")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RunSpec:
        target = self.task.target_composition
        if target is not None:
            allowed = set(self.chemistry.allowed_elements)
            missing = sorted(str(e) for e in target.elements if str(e) not in allowed)
            if missing:
                raise ValueError(
                    f"task.target '{self.task.target}' contains {', '.join(missing)}, "
                    "which chemistry does not allow"
                )
            if target.num_atoms > self.chemistry.max_atoms:
                raise ValueError(
                    f"task.target '{self.task.target}' needs more atoms than chemistry.max_atoms "
                    f"= {self.chemistry.max_atoms}"
                )
            if len(target.elements) > self.chemistry.max_elements:
                raise ValueError("task.target has more elements than chemistry.max_elements")
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objectives are listed twice: {names}")
        for objective in self.objectives:
            function = objective.custom_function
            if function is not None and function not in self.custom:
                known = ", ".join(self.custom) or "none"
                raise ValueError(
                    f"objective '{objective.name}' needs '{function}' in the 'custom' table "
                    f"(defined: {known})"
                )
        return self

    def has_objective(self, name: str) -> bool:
        return any(o.name == name for o in self.objectives)

    @property
    def run_dir(self) -> Path:
        return self.output / self.name


def _location(loc: tuple[Any, ...]) -> str:
    """pydantic location → dotted key, dropping discriminator tags such as 'builtin'."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        elif item in PROPOSER_KINDS and parts and parts[-1].startswith("proposers["):
            continue
        else:
            parts.append(str(item))
    return ".".join(parts)


def _one_sentence(error: ValidationError) -> str:
    """The first validation error as one line: control characters in keys or values (a key such as
    "a\\nb") are shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in _describe(error))


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    key = _location(first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        where = f" in '{parent}'" if parent else ""
        allowed = ", ".join(_allowed_keys(first["loc"][:-1]))
        return f"unknown key '{key}'{where}; allowed keys: {allowed}"
    message = first["msg"].removeprefix("Value error, ")
    if kind == "missing":
        return f"missing required key '{key}'"
    if kind == "union_tag_invalid":
        return f"'{key}' has an unknown kind; allowed kinds: {', '.join(PROPOSER_KINDS)}"
    return f"'{key}': {message}" if key else message


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the model found by walking a pydantic error location from RunSpec."""
    model: type[BaseModel] = RunSpec
    candidates: list[type[BaseModel]] = [RunSpec]
    for part in loc:
        if isinstance(part, int):
            continue
        tagged = [
            m for m in candidates if m.model_fields.get("kind") and m.model_fields["kind"].default == part
        ]
        if tagged:
            model = tagged[0]
            continue
        field = model.model_fields.get(part)
        if field is None:
            break
        candidates = _models_in(field.annotation)
        model = candidates[0] if candidates else model
    return list(model.model_fields)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Pydantic model classes inside an annotation such as list[A | B] or Annotated[...]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or getattr(annotation, "__metadata__", ()):
        found.extend(_models_in(arg))
    origin = getattr(annotation, "__origin__", None)
    if origin is not None and not found:
        found.extend(_models_in(origin))
    return found


def parse_spec(data: dict[str, Any]) -> RunSpec:
    """Validate a spec dict's shape; raise SpecError with one sentence on the first problem.

    Only the shape is checked here (types, ranges, keys, consistency of the values): what needs
    files, models or chemistry (model and hull files, a charge-balanced CSP target) is checked by
    `preflight.check_inputs` before a run starts, so reading a spec never loads torch."""
    if not isinstance(data, dict):
        raise SpecError("the spec must be a YAML mapping of keys such as name, chemistry, generations")
    try:
        return RunSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(f"invalid spec: {_one_sentence(exc)}") from None


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, mark: yaml.Mark) -> None:
        super().__init__(f"the key '{key}' appears twice")
        self.key, self.problem_mark = key, mark


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice (YAML would keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, list):  # unhashable; construct_mapping reports it
                continue
            if key in seen:
                raise _DuplicateKey(key, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _too_many_nodes(data: Any, budget: int = MAX_SPEC_NODES) -> bool:
    """True when `data` holds more than `budget` values (aliases counted each time they occur)."""
    stack, seen = [data], 0
    while stack:
        seen += 1
        if seen > budget:
            return True
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def load_spec(path: str | Path) -> RunSpec:
    """Read and validate a YAML run spec (at most MAX_SPEC_BYTES, no key given twice)."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec file '{path}' does not exist")
    size = path.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise SpecError(f"spec file '{path}' has {size} bytes; a spec may have at most {MAX_SPEC_BYTES}")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except _DuplicateKey as exc:
        line = exc.problem_mark.line + 1
        raise SpecError(
            f"spec file '{path}' gives the key '{exc.key}' twice (line {line}); keep one"
        ) from None
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SpecError(f"spec file '{path}' is not valid YAML{where}") from None
    if _too_many_nodes(data):
        raise SpecError(f"spec file '{path}' holds more than {MAX_SPEC_NODES} values; a spec is smaller")
    if isinstance(data, dict):
        _resolve_relative_paths(data, path.parent)
    return parse_spec(data)


def _resolve_relative_paths(data: dict[str, Any], folder: Path) -> None:
    """File paths in a spec file are relative to the spec file's folder."""

    def resolve(value: Any) -> Any:
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            return str(folder / value)
        return value

    task = data.get("task")
    if isinstance(task, dict) and "known_structure" in task:
        task["known_structure"] = resolve(task["known_structure"])
    reference = data.get("reference")
    if isinstance(reference, dict) and reference.get("hull") not in (None, *HULL_REFERENCES):
        reference["hull"] = resolve(reference["hull"])
    proposers = data.get("proposers")
    for proposer in proposers if isinstance(proposers, list) else []:
        if isinstance(proposer, dict) and "templates" in proposer:
            proposer["templates"] = resolve(proposer["templates"])
    mlip = data.get("mlip")
    for key in ("model", "prerelax"):
        if isinstance(mlip, dict) and isinstance(mlip.get(key), str) and mlip[key] not in model_names():
            mlip[key] = resolve(mlip[key])  # a model file, relative to the spec file
    custom = data.get("custom")
    for name, reference in (custom if isinstance(custom, dict) else {}).items():
        if isinstance(reference, str) and ".py:" in reference:
            custom[name] = resolve(reference)


def dump_spec(spec: RunSpec) -> str:
    """The resolved spec as YAML, as stored in the run folder. API keys are left out: a resumed
    run reads them from the environment (OPENAI_API_KEY)."""
    data = spec.model_dump(mode="json")
    for proposer in data["proposers"]:
        proposer.pop("api_key", None)
    return yaml.safe_dump(data, sort_keys=False)

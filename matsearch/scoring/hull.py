"""Energy above the convex hull of known DFT compounds (Matbench-Discovery style).

Formation energy of a candidate = MLIP energy per atom − Σ x_i μ_i, with μ_i the elemental
reference energies (MP 2023-02-07). It is compared with the lower convex hull (pymatgen
PhaseDiagram, elements at 0) of the DFT formation energies of the known compounds of the
candidate's chemical system and all its subsystems. All energies are eV/atom.
"""

from __future__ import annotations

import copy
import itertools
import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pymatgen.analysis.phase_diagram import PDEntry, PhaseDiagram
from pymatgen.core import Composition, Element

from matsearch import data
from matsearch.errors import DataError

_NO_ELECTRONEGATIVITY = "No Pauling electronegativity"  # pymatgen warns for noble gases


@dataclass(frozen=True)
class HullPoint:
    """Where a composition and energy lie relative to a hull reference."""

    formation_energy_per_atom: float  # eV/atom, vs the elemental references
    e_above_hull: float  # eV/atom; negative: below the known hull
    decomposition: dict[str, float]  # hull phase (reduced formula) -> fraction of atoms
    reference: str  # HullReference.name


class HullReference:
    """Convex hulls of known DFT formation energies plus the elemental references that put an
    MLIP energy on the same scale.

    `formation_energies` needs columns formula and formation_energy_per_atom (eV/atom);
    `elemental_refs` maps element symbol -> reference energy (eV/atom). Phase diagrams are built
    per chemical system on first use and cached.
    """

    def __init__(
        self,
        formation_energies: pd.DataFrame,
        elemental_refs: Mapping[str, float],
        name: str,
        *,
        source: str = "",
        refs_name: str = data.ELEMENTAL_REFERENCES,
    ) -> None:
        self.name = name
        self.source = source
        self.refs_name = refs_name
        self._refs = dict(elemental_refs)
        table = data.check_hull_table(formation_energies, f"hull reference '{name}'")
        self._n_entries = len(table)
        lowest = table.groupby("formula", sort=True)["formation_energy_per_atom"].min()
        self._ids: dict[str, str] = {}  # formula -> material_id of its lowest entry, where the table has ids
        if "material_id" in table.columns:
            first = table.loc[table.groupby("formula", sort=False)["formation_energy_per_atom"].idxmin()]
            self._ids = dict(zip(first["formula"].astype(str), first["material_id"].astype(str), strict=True))
        self._by_system: dict[frozenset[str], list[tuple[str, float]]] = defaultdict(list)
        for formula, energy in lowest.items():
            self._by_system[data.formula_elements(str(formula))].append((str(formula), energy))
        unknown = sorted(
            {el for system in self._by_system for el in system if not Element.is_valid_symbol(el)}
        )
        if unknown:
            raise DataError(
                f"Hull reference '{name}' names unknown element(s) {', '.join(unknown)} in its "
                "formulas; use element symbols such as Li, O, Fe."
            )
        self._system_order = {system: i for i, system in enumerate(self._by_system)}  # table order
        self._diagrams: dict[frozenset[str], PhaseDiagram] = {}

    @classmethod
    def from_registry(cls, name: str = "mp20-subset") -> HullReference:
        """A named reference from the data registry (data.HULL_REFERENCES) with the MP
        2023-02-07 elemental references."""
        table = data.load_formation_energies(name)
        dataset = data.get_dataset(data.HULL_REFERENCES[name])
        return cls(
            table,
            data.load_elemental_references(),
            name,
            source=f"{dataset.description}; {dataset.relpath}",
        )

    @classmethod
    def named(cls, reference: str) -> HullReference:
        """`reference` as a spec's `reference.hull` gives it: a registry name or a file path."""
        if reference in data.HULL_REFERENCES:
            return cls.from_registry(reference)
        return cls.from_file(Path(reference))

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None) -> HullReference:
        """A user's hull entries (CSV/JSON of formula, formation_energy_per_atom in eV/atom) with
        the MP 2023-02-07 elemental references."""
        table = data.load_hull_entries(path)
        return cls(
            table,
            data.load_elemental_references(),
            name or str(path),
            source=f"user file {path}",
        )

    def with_elemental_references(self, refs: Mapping[str, float], refs_name: str) -> HullReference:
        """The same hull with μ_i (eV/atom) replaced for the given elements, e.g. computed with the
        run's own MLIP so that its systematic error cancels in formation energies."""
        replaced = copy.copy(self)
        replaced._refs = {**self._refs, **refs}
        replaced.refs_name = refs_name
        return replaced

    def listed(self, composition: Composition | str) -> str | None:
        """The hull's own entry for this reduced composition: its material_id (its formula where the
        table has no ids), or None when the hull lists no compound of that composition."""
        composition = _composition(composition)
        system = frozenset(str(e) for e in composition.elements)
        for formula, _ in self._by_system.get(system, ()):
            if Composition(formula).reduced_formula == composition.reduced_formula:
                return self._ids.get(formula, formula)
        return None

    def describe(self) -> str:
        """One line naming the reference, its size and the elemental references used."""
        return (
            f"hull reference '{self.name}': {self._n_entries:,} DFT formation energies"
            f"{f' ({self.source})' if self.source else ''}; elemental references "
            f"{self.refs_name} ({len(self._refs)} elements); "
            "e_above_hull = E_MLIP/atom − Σ x_i μ_i − hull formation energy (eV/atom)"
        )

    def formation_energy_per_atom(self, composition: Composition | str, energy_per_atom: float) -> float:
        """Formation energy (eV/atom) of `composition` whose MLIP energy is `energy_per_atom`."""
        comp = _composition(composition)
        return energy_per_atom - sum(
            comp.get_atomic_fraction(el) * self._reference(el.symbol) for el in comp.elements
        )

    def evaluate(self, composition: Composition | str, energy_per_atom: float) -> HullPoint:
        """Formation energy, energy above hull and decomposition (all eV/atom)."""
        if not math.isfinite(energy_per_atom):
            raise ValueError(f"energy_per_atom must be a finite number, got {energy_per_atom}")
        comp = _composition(composition)
        return self.evaluate_formation(comp, self.formation_energy_per_atom(comp, energy_per_atom))

    def evaluate_formation(self, composition: Composition | str, e_form: float) -> HullPoint:
        """Energy above hull and decomposition of `composition` at formation energy `e_form`
        (eV/atom, already relative to the elemental references)."""
        comp = _composition(composition)
        diagram = self.phase_diagram(el.symbol for el in comp.elements)
        phases: dict[str, float] = defaultdict(float)
        with _quiet():
            decomposition, hull_energy = diagram.get_decomp_and_hull_energy_per_atom(comp)
            for entry, fraction in decomposition.items():
                phases[entry.composition.reduced_formula] += float(fraction)
        return HullPoint(
            formation_energy_per_atom=e_form,
            e_above_hull=e_form - float(hull_energy),
            decomposition=dict(phases),
            reference=self.name,
        )

    def e_above_hull(self, composition: Composition | str, energy_per_atom: float) -> float:
        """Energy above the hull (eV/atom) of `composition` at `energy_per_atom` (eV/atom, MLIP)."""
        return self.evaluate(composition, energy_per_atom).e_above_hull

    def decomposition(self, composition: Composition | str, energy_per_atom: float) -> dict[str, float]:
        """Hull phases (reduced formula -> atom fraction) that `composition` decomposes into."""
        return self.evaluate(composition, energy_per_atom).decomposition

    def phase_diagram(self, elements: Iterable[str]) -> PhaseDiagram:
        """The PhaseDiagram (formation energies, elements at 0) of a chemical system."""
        system = frozenset(elements)
        if system not in self._diagrams:
            for el in sorted(system):
                self._reference(el)
            entries = [PDEntry(Composition(el), 0.0) for el in sorted(system)]
            for subsystem in self._subsystems(system):
                for formula, energy in self._by_system[subsystem]:
                    comp = Composition(formula)
                    entries.append(PDEntry(comp, energy * comp.num_atoms, name=formula))
            with _quiet():
                self._diagrams[system] = PhaseDiagram(entries)
        return self._diagrams[system]

    def _subsystems(self, system: frozenset[str]) -> list[frozenset[str]]:
        """The chemical systems of the table inside `system`, in table order; the subsets of a small
        system are looked up rather than every system of the table tested."""
        if 2 ** len(system) > len(self._system_order):
            return [subsystem for subsystem in self._system_order if subsystem <= system]
        subsets = (
            frozenset(chosen)
            for k in range(1, len(system) + 1)
            for chosen in itertools.combinations(sorted(system), k)
        )
        return sorted((s for s in subsets if s in self._system_order), key=self._system_order.__getitem__)

    def _reference(self, symbol: str) -> float:
        try:
            return self._refs[symbol]
        except KeyError:
            raise DataError(
                f"Element {symbol} has no elemental reference energy in {self.refs_name} "
                f"(hull reference '{self.name}'), so its formation "
                "energy cannot be computed; remove it from the chemistry."
            ) from None


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence pymatgen's noble-gas electronegativity warnings (harmless for hulls)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NO_ELECTRONEGATIVITY)
        yield


def _composition(composition: Composition | str) -> Composition:
    try:
        comp = Composition(composition)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"'{composition}' is not a chemical formula ({exc})") from exc
    unknown = [str(el) for el in comp.elements if not Element.is_valid_symbol(el.symbol)]
    if unknown:
        raise ValueError(f"'{composition}' is not a chemical formula (unknown element {', '.join(unknown)})")
    if comp.num_atoms <= 0:
        raise ValueError(f"composition '{composition}' has no atoms")
    return comp.element_composition

"""Data and splits of the default-model recipe (read from the data registry / MATSEARCH_DATA_DIR).

Every split is seeded and defined on sorted ids, so training and benchmarks agree on what is held
out. Held out from training: MP-20 val and test, 20 % of the MP elastic binaries
(``elastic_split``), the mlearn test sets and WBM (never read here).

Energies are eV per cell. Absolute labels are on the MP-compatible scale of CHGNet's AtomRef:
MP-20 formation energies (MP2020-corrected) + the MP 2023-02-07 elemental references, the MP
elemental polymorphs, and the MPtrj frames' corrected total energies. Other DFT sets (mlearn,
HfO2 OUTCARs) are used only through energy differences within one set (``group``).
"""

from __future__ import annotations

import gzip
import json
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from pymatgen.core import Composition, Structure
from pymatgen.io.ase import AseAtomsAdaptor

from matsearch import data
from matsearch.mlip.training.cached_fit import EnergyExample
from matsearch.mlip.training.eos_targets import strained_copies

SEED = 0
ELASTIC_HOLDOUT_FRACTION = 0.2
ELASTIC_VALIDATION_FRACTION = 0.1  # of the remaining 80 %, for early stopping
MLEARN_TRAIN = ("Ge", "Li", "Mo", "Si")
MLEARN_TEST = ("Cu", "Ge", "Li", "Mo", "Ni", "Si")
MAX_ELASTIC_ATOMS = 16
MAX_K_VRH_GPA = 500.0
RECIPE_VOLUME_STRAINS = (-0.06, -0.03, 0.0, 0.03, 0.06)  # V/V0 − 1 of the curvature targets


def elemental_refs() -> dict[str, float]:
    """MP 2023-02-07 elemental reference energies, eV/atom."""
    return data.load_elemental_references()


def total_energy(structure: Structure, formation_energy_per_atom: float, refs: dict[str, float]) -> float:
    """eV per cell from a formation energy (eV/atom) and elemental references (eV/atom)."""
    composition = structure.composition
    return float(
        formation_energy_per_atom * composition.num_atoms
        + sum(amount * refs[el.symbol] for el, amount in composition.element_composition.items())
    )


def mp20_rows(split: str, n: int | None = None, seed: int = SEED) -> pd.DataFrame:
    """MP-20 rows of a split with CIF and formation energy, sorted by id; n drawn (seeded) if given."""
    frame = data.load_mp20(split)
    frame = frame[frame["cif"].notna() & frame["formation_energy_per_atom"].notna()]
    frame = frame.sort_values("material_id").reset_index(drop=True)
    if n is not None and n < len(frame):
        picked = np.sort(np.random.default_rng(seed).choice(len(frame), size=n, replace=False))
        frame = frame.iloc[picked].reset_index(drop=True)
    return frame


def mp20_examples(
    split: str, n: int | None = None, weight: float = 1.0, seed: int = SEED
) -> list[EnergyExample]:
    """MP-20 DFT-relaxed structures with absolute total energies (eV per cell)."""
    refs = elemental_refs()
    examples = []
    for row in mp20_rows(split, n, seed).itertuples():
        structure = Structure.from_str(row.cif, fmt="cif")
        examples.append(
            EnergyExample(
                structure, total_energy(structure, row.formation_energy_per_atom, refs), None, weight
            )
        )
    return examples


def elastic_records() -> list[dict]:
    """All MP elastic binaries, sorted by mp_id (structure as dict, K_VRH in GPa)."""
    with gzip.open(data.dataset_path("matcalc-mp-binary-elasticity"), "rt", encoding="utf-8") as fh:
        records = json.load(fh)
    return sorted(records, key=lambda r: r["mp_id"])


def elastic_split(records: list[dict], seed: int = SEED) -> dict[str, list[dict]]:
    """train / validation / holdout (20 %) of the elastic binaries by a seeded permutation."""
    order = np.random.default_rng(seed).permutation(len(records))
    n_holdout = round(ELASTIC_HOLDOUT_FRACTION * len(records))
    holdout = [records[i] for i in sorted(order[:n_holdout])]
    rest = order[n_holdout:]
    n_validation = round(ELASTIC_VALIDATION_FRACTION * len(rest))
    return {
        "holdout": holdout,
        "validation": [records[i] for i in sorted(rest[:n_validation])],
        "train": [records[i] for i in sorted(rest[n_validation:])],
    }


def usable_elastic(record: dict, max_atoms: int = MAX_ELASTIC_ATOMS) -> bool:
    """Small enough, with a finite, positive, plausible K_VRH."""
    k = record.get("bulk_modulus_vrh")
    return (
        k is not None
        and np.isfinite(k)
        and 0 < k <= MAX_K_VRH_GPA
        and len(record["structure"]["sites"]) <= max_atoms
    )


def is_layered_or_chain(structure: Structure) -> bool:
    """True when the bonded network (JmolNN bonds, Larsen's algorithm) is 1- or 2-dimensional.

    For such crystals K_VRH (an average over the elastic tensor) is far below the curvature of
    E(V) under isotropic strain, so an isotropic Birch–Murnaghan target would be inconsistent.
    """
    import warnings

    from pymatgen.analysis.dimensionality import get_dimensionality_larsen
    from pymatgen.analysis.graphs import StructureGraph
    from pymatgen.analysis.local_env import JmolNN

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = StructureGraph.from_local_env_strategy(structure, JmolNN())
        return int(get_dimensionality_larsen(graph)) in (1, 2)


def is_cubic(structure: Structure) -> bool:
    """Cubic crystal system (symprec 0.1 Å): K_V = K_R = K_VRH, and isotropic strain keeps the
    symmetry, so the Birch–Murnaghan target is the curvature of E(V) itself."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    return SpacegroupAnalyzer(structure, symprec=0.1).get_crystal_system() == "cubic"


def eos_examples(
    records: list[dict],
    weight: float,
    noncubic_factor: float = 0.25,
    reference_volume: float = 15.0,
    volume_strains: tuple[float, ...] = RECIPE_VOLUME_STRAINS,
) -> list[EnergyExample]:
    """Strained copies (±6 % volume) of each usable, 3-D bonded record with BM energies.

    One group per material with the volume strain as detrending coordinate (so the curvature of
    E(V) is fitted). The weight is scaled by (reference_volume / V0 per atom)², Å³, so every
    material's bulk-modulus error counts alike, and by ``noncubic_factor`` for non-cubic crystals
    (whose K_VRH differs from the isotropic-strain curvature; 0 leaves them out).
    """
    examples = []
    for record in records:
        if not usable_elastic(record):
            continue
        structure = Structure.from_dict(record["structure"])
        factor = 1.0 if is_cubic(structure) else noncubic_factor
        if factor == 0 or is_layered_or_chain(structure):
            continue
        scaled_weight = factor * weight * (reference_volume * len(structure) / structure.volume) ** 2
        for copy in strained_copies(structure, record["bulk_modulus_vrh"], volume_strains):
            examples.append(
                EnergyExample(
                    copy.structure,
                    copy.relative_energy,
                    f"eos:{record['mp_id']}",
                    scaled_weight,
                    coordinate=copy.volume_strain,
                )
            )
    return examples


def mlearn_records(element: str, split: str) -> list[dict]:
    """mlearn records: structure, energy (eV), forces (eV/Å), stress (kB, mlearn's sign)."""
    path = data.dataset_path(f"mlearn-{element.lower()}-{split}")
    with gzip.open(path, "rt") as fh:
        raw = json.load(fh)
    return [
        {
            "structure": Structure.from_dict(r["structure"]),
            "energy": float(r["outputs"]["energy"]),
            "forces": np.asarray(r["outputs"]["forces"], dtype=float),
            "stress": np.asarray(r["outputs"].get("virial_stress", np.nan), dtype=float),
        }
        for r in raw
    ]


def mlearn_examples(split: str, weight: float, validation_fraction: float = 0.1) -> dict[str, list]:
    """mlearn training sets as one energy-difference group per element: train / validation."""
    out: dict[str, list[EnergyExample]] = {"train": [], "validation": []}
    for element in MLEARN_TRAIN:
        records = mlearn_records(element, split)
        order = np.random.default_rng(SEED).permutation(len(records))
        n_val = round(validation_fraction * len(records))
        for rank, k in enumerate(order):
            example = EnergyExample(
                records[k]["structure"], records[k]["energy"], f"mlearn:{element}", weight
            )
            out["validation" if rank < n_val else "train"].append(example)
    return out


def hfo2_frames() -> list:
    """The HfO2 OUTCAR frames (96 atoms) as ASE Atoms with their single-point results."""
    from ase.io import read

    frames = []
    with (
        tarfile.open(data.dataset_path("sevennet-hfo2-outcars")) as archive,
        tempfile.TemporaryDirectory() as tmp,
    ):
        members = sorted((m for m in archive.getmembers() if "OUTCAR" in m.name), key=lambda m: m.name)
        for k, member in enumerate(members):
            path = Path(tmp) / f"OUTCAR_{k}"
            path.write_bytes(archive.extractfile(member).read())
            frames += read(path, index=":", format="vasp-out")
    return frames


def mptrj_frames() -> list[tuple]:
    """MPtrj frames (orb fixtures): (ASE Atoms with results, MP2020-corrected total energy in eV)."""
    from ase.db import connect

    frames = []
    for name in ("orb-10-mptraj-systems", "orb-10-thin-mptraj-systems"):
        with connect(data.dataset_path(name)) as database:
            for row in database.select():
                energy = (row.data or {}).get("corrected_total_energy", row.energy)
                frames.append((row.toatoms(), float(energy)))
    return frames


def hfo2_examples(weight: float) -> list[EnergyExample]:
    """The HfO2 OUTCAR frames as one energy-difference group."""
    examples = []
    for atoms in hfo2_frames():
        energy = float(atoms.get_potential_energy())
        examples.append(EnergyExample(AseAtomsAdaptor.get_structure(atoms), energy, "hfo2", weight))
    return examples


def mptrj_examples(weight: float) -> list[EnergyExample]:
    """MPtrj frames with their MP2020-corrected total energies (absolute, eV)."""
    return [
        EnergyExample(AseAtomsAdaptor.get_structure(atoms), energy, None, weight)
        for atoms, energy in mptrj_frames()
    ]


def elemental_examples(weight: float, max_atoms: int = 24, tolerance: float = 0.05) -> list[EnergyExample]:
    """MP elemental polymorphs (matcalc) with their MP energies, as one group per element.

    Only the energy differences between polymorphs of an element are fitted (their absolute values
    would pull the least-squares AtomRef refit of rarely seen elements). Elements whose lowest
    polymorph lies further than ``tolerance`` eV/atom from the MP 2023-02-07 reference are skipped.
    """
    refs = elemental_refs()
    with gzip.open(data.dataset_path("matcalc-mp-pbe-element-refs"), "rt") as fh:
        raw = json.load(fh)
    examples = []
    for element, entry in sorted(raw.items()):
        energies = np.asarray(entry["energy_per_atom"], dtype=float)
        if element not in refs or abs(energies.min() - refs[element]) > tolerance:
            continue
        for structure_dict, energy in zip(entry["structure"], energies, strict=True):
            structure = Structure.from_dict(structure_dict)
            if len(structure) <= max_atoms:
                examples.append(
                    EnergyExample(structure, float(energy) * len(structure), f"elemental:{element}", weight)
                )
    return examples


def wbm_rows(n: int | None = None, seed: int = SEED) -> pd.DataFrame:
    """WBM dev rows (measurement only), optionally n drawn with a seeded generator."""
    root = data.data_dir()
    if root is None:
        raise FileNotFoundError("set MATSEARCH_DATA_DIR to the data mirror holding wbm/wbm_dev.csv.gz")
    frame = pd.read_csv(Path(root) / "wbm" / "wbm_dev.csv.gz", keep_default_na=False, na_values=[""])
    if n is not None and n < len(frame):
        picked = np.sort(np.random.default_rng(seed).choice(len(frame), size=n, replace=False))
        frame = frame.iloc[picked].reset_index(drop=True)
    return frame


def reduced_formula(structure: Structure) -> str:
    """Reduced formula of a structure's composition."""
    return Composition(structure.composition).reduced_formula

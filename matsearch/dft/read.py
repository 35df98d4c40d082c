"""Read a finished VASP calculation: vasprun.xml[.gz] (pymatgen), or an OUTCAR where no vasprun exists (ASE).

Energies are eV per cell (VASP's energy(sigma→0)), forces eV/Å, stress GPa with ASE's sign
(positive = tensile; VASP writes kB with the opposite sign). Every ionic step becomes a frame.
Errors a user can fix (a truncated file, an unconverged run, an OUTCAR without a finished step)
raise DftInputError with one sentence.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pymatgen.core import Structure

from matsearch.errors import DftInputError
from matsearch.mlip.units import EV_PER_A3_IN_GPA

KBAR_TO_ASE_GPA = -0.1  # VASP stress (kB, positive = compressive) → GPa, ASE sign
# VASP's run types as pymatgen names them, grouped by the hull they can be compared with
PBE_RUN_TYPES = ("GGA", "GGA+U", "PBE", "PBE+U")


@dataclass
class DftFrame:
    """One ionic step: structure, energy (eV per cell), forces [n, 3] (eV/Å), stress [3, 3] (GPa,
    ASE sign)."""

    structure: Structure
    energy_ev: float
    forces: np.ndarray | None = None
    stress_gpa: np.ndarray | None = None


@dataclass
class DftCalculation:
    """A finished VASP calculation: its frames (first = initial structure, last = final)."""

    path: Path
    run_type: str  # "GGA", "GGA+U", "R2SCAN", ...
    hubbards: dict[str, float]  # U (eV) per element; {} without +U
    frames: list[DftFrame]
    digest: str  # sha256 of the file's bytes (uncompressed): the same result ingested twice is seen
    potcar_symbols: list[str] = field(default_factory=list)

    @property
    def initial(self) -> Structure:
        return self.frames[0].structure

    @property
    def final(self) -> DftFrame:
        return self.frames[-1]

    @property
    def is_pbe(self) -> bool:
        """True when the energies can be compared with a PBE(+U) hull (MP2020-corrected)."""
        return self.run_type.upper() in PBE_RUN_TYPES


def find_outputs(paths: list[Path]) -> list[Path]:
    """The VASP output files under `paths` (files or folders, searched recursively): per folder its
    vasprun files (``*vasprun*.xml[.gz]``), else its OUTCARs (``OUTCAR*``); a file named directly is
    taken as it is. Sorted, each once."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise DftInputError(f"'{path}' does not exist; give VASP output files or folders holding them")
        if path.is_file():
            found.append(path)
            continue
        by_folder: dict[Path, list[Path]] = {}
        for file in sorted(p for p in path.rglob("*") if p.is_file() and (_is_vasprun(p) or _is_outcar(p))):
            by_folder.setdefault(file.parent, []).append(file)
        for files in by_folder.values():
            vaspruns = [f for f in files if _is_vasprun(f)]
            found.extend(vaspruns or files)
    return sorted(dict.fromkeys(found))


def _is_vasprun(path: Path) -> bool:
    return "vasprun" in path.name and (path.name.endswith(".xml") or path.name.endswith(".xml.gz"))


def _is_outcar(path: Path) -> bool:
    return path.name.startswith("OUTCAR")


def read_calculation(path: Path) -> DftCalculation:
    """The calculation in `path`: a vasprun.xml (also any *vasprun*.xml[.gz]) or an OUTCAR."""
    path = Path(path)
    data = _bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    if b"<modeling" in data[:4096]:
        return _read_vasprun(path, digest)
    if b"vasp." in data[:4096]:
        return _read_outcar(path, data.decode(errors="replace"), digest)
    raise DftInputError(f"'{path}' is neither a vasprun.xml nor an OUTCAR; give VASP output files")


def _bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (OSError, EOFError) as exc:
        raise DftInputError(f"'{path}' cannot be read ({exc})") from None


def _read_vasprun(path: Path, digest: str) -> DftCalculation:
    from pymatgen.io.vasp import Vasprun

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = Vasprun(str(path), parse_potcar_file=False, parse_dos=False, parse_eigen=False)
    except Exception as exc:  # noqa: BLE001 - pymatgen raises XML, value and key errors alike
        raise DftInputError(
            f"'{path}' is truncated or not a complete vasprun.xml ({type(exc).__name__}); "
            "VASP probably stopped before finishing: rerun or continue the calculation"
        ) from None
    if not run.converged_electronic:
        raise DftInputError(f"'{path}': the last electronic step did not converge (NELM reached)")
    if not run.converged_ionic:
        raise DftInputError(
            f"'{path}': the ionic relaxation did not converge within NSW steps; continue it from CONTCAR"
        )
    frames = [
        DftFrame(
            structure=step["structure"],
            energy_ev=_step_energy(step),
            forces=None if step.get("forces") is None else np.asarray(step["forces"], dtype=float),
            stress_gpa=None
            if step.get("stress") is None
            else KBAR_TO_ASE_GPA * np.asarray(step["stress"], dtype=float),
        )
        for step in run.ionic_steps
    ]
    if not frames:
        raise DftInputError(f"'{path}' holds no finished ionic step")
    return DftCalculation(
        path=path,
        run_type=str(run.run_type),
        hubbards={k: float(v) for k, v in run.hubbards.items() if v},
        frames=frames,
        digest=digest,
        potcar_symbols=list(run.potcar_symbols),
    )


def _step_energy(step: dict) -> float:
    """energy(sigma→0) of an ionic step (eV), repaired where VASP 5/6 wrote it wrongly in vasprun.xml
    (as pymatgen's Vasprun.final_energy does: from the last electronic step's sigma→0 shift)."""
    last = step["electronic_steps"][-1] if step.get("electronic_steps") else {}
    if "e_0_energy" in last and "e_fr_energy" in last:
        return float(last["e_0_energy"] - last["e_fr_energy"] + step["e_fr_energy"])
    return float(step.get("e_0_energy", step["e_fr_energy"]))


def _read_outcar(path: Path, text: str, digest: str) -> DftCalculation:
    from ase.io import read
    from pymatgen.io.ase import AseAtomsAdaptor

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            images = read(str(path), index=":", format="vasp-out")
    except Exception:  # noqa: BLE001 - ASE's parser fails in many ways on a partial file
        images = []
    if not images:
        raise DftInputError(
            f"'{path}' is an OUTCAR without a finished ionic step; the calculation stopped early"
        )
    frames = []
    for atoms in images:
        stress = atoms.get_stress(voigt=False) if "stress" in atoms.calc.results else None
        frames.append(
            DftFrame(
                structure=AseAtomsAdaptor.get_structure(atoms),
                energy_ev=float(atoms.get_potential_energy(force_consistent=False)),
                forces=np.asarray(atoms.get_forces(), dtype=float),
                stress_gpa=None if stress is None else np.asarray(stress) * EV_PER_A3_IN_GPA,
            )
        )
    return DftCalculation(
        path=path,
        run_type=_outcar_run_type(text),
        hubbards=_outcar_hubbards(text),
        frames=frames,
        digest=digest,
    )


def _outcar_run_type(text: str) -> str:
    metagga = re.search(r"METAGGA\s*=\s*(\S+)", text)
    if metagga and metagga.group(1).upper() not in ("F", "--", "NONE", "FALSE"):
        return metagga.group(1).upper()
    return "GGA+U" if re.search(r"LDAU\s*=\s*T", text) else "GGA"


def _outcar_hubbards(text: str) -> dict[str, float]:
    """U (eV) per element from the OUTCAR's LDAUU line and its POTCAR titles; {} without +U."""
    if not re.search(r"LDAU\s*=\s*T", text):
        return {}
    values = re.search(r"LDAUU\s*=\s*([-\d.\s]+)", text)
    elements = [m.split("_")[0] for m in re.findall(r"POTCAR:\s+PAW_PBE\s+(\S+)", text)]
    elements = list(dict.fromkeys(elements))
    if not values:
        return {}
    u = [float(x) for x in values.group(1).split()]
    return {el: val for el, val in zip(elements, u, strict=False) if val}

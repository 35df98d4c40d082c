"""Reference Relaxer: the `chgnet` package's StructOptimizer, one structure at a time.

This is how MatLLMSearch relaxes: ASE FIRE on a FrechetCellFilter with CHGNet forces and stress,
per structure. A wall-clock deadline is checked before every FIRE step, so a slow relaxation is
really stopped (at the next step) rather than reported late.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import units
from ase.optimize import FIRE
from pymatgen.core import Structure

from matsearch.evaluation.ase_fixed_cell import relax_fixed_cell_ase
from matsearch.relax_defaults import RelaxSettings
from matsearch.results import RelaxResult

if TYPE_CHECKING:
    from chgnet.model import CHGNet, StructOptimizer
    from chgnet.model.dynamics import CHGNetCalculator

logger = logging.getLogger(__name__)


class RelaxationTimeout(Exception):
    """Raised inside the optimiser when a structure's wall-clock deadline has passed."""


class DeadlineFIRE(FIRE):
    """ASE FIRE that raises RelaxationTimeout before any step taken after `deadline`.

    `deadline` is a time.perf_counter() value; `run_log` receives this optimiser so the caller
    can read the step count after StructOptimizer.relax returns or raises.
    """

    def __init__(self, atoms: Any, deadline: float, run_log: list[FIRE], **kwargs: Any) -> None:
        super().__init__(atoms, **kwargs)
        self.deadline = deadline
        run_log.append(self)

    def step(self, f: Any = None) -> None:
        if time.perf_counter() > self.deadline:
            raise RelaxationTimeout
        super().step(f)


class CHGNetRelaxer:
    """Relax structures one by one with CHGNet's StructOptimizer (FIRE + FrechetCellFilter).

    Args:
        settings: fmax (eV/Å, atoms and Frechet cell rows), FIRE step cap and timeout per
            structure; the batch budgets and the prerelax fields are the batched relaxer's and are
            not read here. None: ``RelaxSettings()``.
        device: "cpu", "cuda", ... ; None lets chgnet choose.
    """

    name = "chgnet"

    def __init__(self, settings: RelaxSettings | None = None, device: str | None = None) -> None:
        self.settings = RelaxSettings() if settings is None else settings
        self.device = device
        self._optimizer: StructOptimizer | None = None
        self._calculator: CHGNetCalculator | None = None  # property scans, sharing the model

    @property
    def optimizer(self) -> StructOptimizer:
        """CHGNet's StructOptimizer with the pretrained model, loaded on first access."""
        if self._optimizer is None:
            from chgnet.model import CHGNet, StructOptimizer

            chatter = io.StringIO()
            with contextlib.redirect_stdout(chatter):
                model = CHGNet.load(use_device=self.device)
                self._optimizer = StructOptimizer(
                    model=model, optimizer_class=DeadlineFIRE, use_device=self.device
                )
            logger.debug("chgnet: %s", chatter.getvalue().strip())
        return self._optimizer

    @property
    def model(self) -> CHGNet:
        """The CHGNet model behind the optimiser."""
        return self.optimizer.calculator.model

    def relax(self, structures: list[Structure]) -> list[RelaxResult]:
        """Relax positions and cell of each structure; one result per input, same order."""
        return [self._relax_one(structure) for structure in structures]

    def _relax_one(self, structure: Structure) -> RelaxResult:
        start = time.perf_counter()
        timeout_s = self.settings.timeout_s
        deadline = math.inf if timeout_s is None else start + timeout_s
        run_log: list[FIRE] = []
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                out = self.optimizer.relax(
                    structure.copy(),
                    fmax=self.settings.fmax,
                    steps=self.settings.steps,
                    relax_cell=True,
                    ase_filter="FrechetCellFilter",
                    verbose=False,
                    assign_magmoms=False,
                    deadline=deadline,
                    run_log=run_log,
                )
        except RelaxationTimeout:
            return RelaxResult(
                structure=None,
                energy_per_atom=None,
                initial_energy_per_atom=None,
                steps=run_log[-1].nsteps,
                wall_time_s=time.perf_counter() - start,
                error=(
                    f"relaxation exceeded {timeout_s:g} s wall-clock timeout after {run_log[-1].nsteps} steps"
                ),
            )
        except Exception as exc:  # noqa: BLE001 - a bad structure must not stop the others
            return RelaxResult(
                structure=None,
                energy_per_atom=None,
                initial_energy_per_atom=None,
                steps=run_log[-1].nsteps if run_log else 0,
                wall_time_s=time.perf_counter() - start,
                error=f"CHGNet relaxation failed: {exc}",
            )
        optimizer = run_log[-1]
        atoms = optimizer.atoms.atoms  # the optimiser moves a FrechetCellFilter around these Atoms
        final = out["final_structure"]
        energies = out["trajectory"].energies
        n_atoms = len(final)
        return RelaxResult(
            structure=final,
            energy_per_atom=float(energies[-1]) / n_atoms,
            initial_energy_per_atom=float(energies[0]) / n_atoms,
            converged=bool(optimizer.converged()),
            steps=optimizer.nsteps,
            wall_time_s=time.perf_counter() - start,
            forces_max=float(np.linalg.norm(atoms.get_forces(), axis=1).max()),
            forces=atoms.get_forces().tolist(),
            stress_gpa=(atoms.get_stress(voigt=False) / units.GPa).tolist(),
            magmoms=[float(m) for m in atoms.get_magnetic_moments()],
        )

    def relax_fixed_cell(self, structures: list[Structure], *, fmax: float, steps: int) -> list[RelaxResult]:
        """Relax the positions of each structure in its fixed cell with ASE's LBFGS and this CHGNet."""
        if self._calculator is None:
            from chgnet.model.dynamics import CHGNetCalculator

            with contextlib.redirect_stdout(io.StringIO()):
                self._calculator = CHGNetCalculator(model=self.model, use_device=self.device)
        return relax_fixed_cell_ase(structures, self._calculator, fmax=fmax, steps=steps)

    def single_point(self, structures: list[Structure]) -> list[float]:
        """Energy per atom (eV/atom) of each structure as given; NaN where CHGNet fails."""
        if not structures:
            return []
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                predictions = self.model.predict_structure(list(structures), task="e")
                return [float(p["e"]) for p in predictions]
            except Exception:  # noqa: BLE001 - retry one by one to isolate the bad structure
                pass
            energies = []
            for structure in structures:
                try:
                    energies.append(float(self.model.predict_structure(structure, task="e")["e"]))
                except Exception as exc:  # noqa: BLE001 - a bad structure must not stop others
                    logger.warning("CHGNet single point failed for %s: %s", structure.formula, exc)
                    energies.append(math.nan)
        return energies

"""Fine-tuning settings: `FinetuneSettings`, the one home of the fine-tuning defaults, read by
``mlip.training.finetune`` and by the `mlip finetune` command (its option defaults).

A leaf module (imports only `errors`), so that the command line can show the defaults without
loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from matsearch.errors import MatsearchError

ATOM_REF_MIN_STRUCTURES = 10  # structures that must contain an element before its AtomRef is refitted


@dataclass(frozen=True)
class FinetuneSettings:
    """Hyper-parameters of ``finetune``; weights multiply (eV/atom)², (eV/Å)² and GPa² errors.

    ``train_layers`` are names of the model's modules (``MLIPModel.named_modules``), e.g.
    "readout", "readout_norm", "atom_convs.3", "long_range"; their parameters are trained, all
    others frozen. The learning rate decays along a cosine to lr/100 over all steps. ``seed`` also
    draws the validation split of ``finetune_cli``.
    """

    epochs: int = 50
    lr: float = 1e-3
    batch_size: int = 16
    train_layers: tuple[str, ...] = ("readout",)
    energy_weight: float = 1.0
    force_weight: float = 1.0
    stress_weight: float = 0.1
    refit_atom_ref: bool = True
    atom_ref_min_structures: int = ATOM_REF_MIN_STRUCTURES  # per element, for the refit to happen
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "train_layers", tuple(self.train_layers))
        if self.epochs < 1 or self.batch_size < 1:
            raise MatsearchError(
                f"epochs and batch_size must be at least 1, got {self.epochs} and {self.batch_size}"
            )
        if self.atom_ref_min_structures < 1:
            raise MatsearchError(
                f"atom_ref_min_structures must be at least 1, got {self.atom_ref_min_structures}"
            )
        if not self.lr > 0:
            raise MatsearchError(f"lr must be positive, got {self.lr}")
        weights = (self.energy_weight, self.force_weight, self.stress_weight)
        if min(weights) < 0 or max(weights) == 0:
            raise MatsearchError(f"loss weights must be >= 0 and not all 0, got {weights}")

    @property
    def fits_gradients(self) -> bool:
        """True when forces or stresses enter the loss."""
        return self.force_weight > 0 or self.stress_weight > 0

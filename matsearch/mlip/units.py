"""Unit conversions at the model's edges. Inside the model: eV, Å, eV/Å, eV/Å³."""

EV_PER_A3_IN_GPA = 160.21766208  # 1 eV/Å³ in GPa: models compute stress in eV/Å³, results give GPa

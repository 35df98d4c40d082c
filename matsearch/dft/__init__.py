"""DFT results back into a run: read VASP outputs, score them on the run's hull, store and learn from them."""

"""CSP benchmark: do the example CSP runs recover rocksalt NaCl and wurtzite ZnO within their budget?

Runs examples/csp_nacl.yaml and examples/csp_zno.yaml (random starts, builtin operators, in-house
MLIP) into a temporary folder and reports, per run, the first generation whose candidates contain
the known structure (StructureMatcher), its RMSD, whether it is the lowest-energy structure, the
number of relaxations and the wall time. Writes benchmarks/results/csp.json.

    MATSEARCH_DATA_DIR=../shared/data python benchmarks/bench_csp.py
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

from matsearch import Search, Status
from matsearch.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ("csp_nacl.yaml", "csp_zno.yaml")


def run_one(example: str, output: Path) -> dict:
    spec = load_spec(ROOT / "examples" / example).model_copy(update={"output": output})
    started = time.perf_counter()
    run = Search(spec).run()
    wall = time.perf_counter() - started
    metrics = run.generation_metrics()
    found = [g for g, m in metrics.items() if m.get("csp_match_id") is not None]
    last = metrics[max(metrics)]
    return {
        "example": example,
        "target": spec.task.target,
        "known_structure": spec.task.known_structure.name,
        "generations": spec.generations,
        "relaxations": len(run.candidates(Status.SCORED)),
        "found_in_generation": found[0] if found else None,
        "match_rmsd": last.get("csp_match_rmsd"),
        "lowest_energy_is_known": last.get("csp_lowest_matches_known"),
        "wall_time_s": round(wall, 1),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        rows = [run_one(example, Path(folder)) for example in EXAMPLES]
    result = {"date": date.today().isoformat(), "machine": platform.platform(), "runs": rows}
    out = ROOT / "benchmarks" / "results" / "csp.json"
    out.write_text(json.dumps(result, indent=2))
    print("| target | found in gen | RMSD | lowest-energy is known | relaxations | wall (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['target']} | {r['found_in_generation']} | {r['match_rmsd']} | "
            f"{r['lowest_energy_is_known']} | {r['relaxations']} | {r['wall_time_s']} |"
        )


if __name__ == "__main__":
    main()

"""MatLLMSearch's protocol through matsearch, with your LLM endpoint and the builtin proposer.

Protocol (Gan et al., "Large Language Models Are Innate Crystal Structure Generators"): a
population of 100 seeded from MP-20, prompts of 2 parents asking for 5 children each (population /
parents prompts per iteration, so 250 children), 10 iterations, parents kept only below an energy
above hull of 0.1 eV/atom (the `e_above_hull` objective with bounds [null, 0.1]: violators rank
after every candidate inside the gate), relaxations to fmax 0.1 eV/Å. Every size can be shrunk by
a flag. The same protocol runs once with the LLM (`--base-url`, `--model`) and once with the
builtin proposer as the offline baseline, and the table is read back from the run stores:

- validity: children that pass the validity checks / children proposed (parse failures count)
- metastable / stable: e_above_hull < 0.1 / ≤ 0 eV/atom among relaxed children
- novelty: relaxed children reproducing no crystal of the known-materials index / relaxed children
- S.U.N.: stable, unique and novel children / children proposed
- tokens (prompt + completion) and the estimated cost (USD; "—" when the price is unknown)

    MATSEARCH_DATA_DIR=../shared/data python benchmarks/bench_llm_search.py \\
        --base-url http://127.0.0.1:8000/v1 --model meta-llama/Llama-3.1-70B-Instruct
    python benchmarks/bench_llm_search.py --baseline-only --population 20 --iterations 2

Writes benchmarks/results/llm_search.json; run folders go to --output (an existing one resumes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import time
from datetime import date
from pathlib import Path
from typing import Any

from matsearch import Run, Search, Status
from matsearch.scoring.objectives import METASTABLE_EV_PER_ATOM

ROOT = Path(__file__).resolve().parents[1]
# Elements of most MP-20 materials (no noble gases, actinides or rare earths beyond La).
ELEMENTS = [
    "H",
    "Li",
    "Be",
    "B",
    "C",
    "N",
    "O",
    "F",
    "Na",
    "Mg",
    "Al",
    "Si",
    "P",
    "S",
    "Cl",
    "K",
    "Ca",
    "Sc",
    "Ti",
    "V",
    "Cr",
    "Mn",
    "Fe",
    "Co",
    "Ni",
    "Cu",
    "Zn",
    "Ga",
    "Ge",
    "As",
    "Se",
    "Br",
    "Rb",
    "Sr",
    "Y",
    "Zr",
    "Nb",
    "Mo",
    "Ru",
    "Rh",
    "Pd",
    "Ag",
    "Cd",
    "In",
    "Sn",
    "Sb",
    "Te",
    "I",
    "Cs",
    "Ba",
    "La",
    "Hf",
    "Ta",
    "W",
    "Re",
    "Os",
    "Ir",
    "Pt",
    "Au",
    "Hg",
    "Tl",
    "Pb",
    "Bi",
]
STABLE_EV_PER_ATOM = 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="OpenAI-compatible server, e.g. http://host:8000/v1")
    parser.add_argument("--model", help="model name as the server knows it")
    parser.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="environment variable with the API key"
    )
    parser.add_argument("--population", type=int, default=100)
    parser.add_argument("--parents-per-prompt", type=int, default=2)
    parser.add_argument("--children-per-prompt", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--ehull-gate", type=float, default=0.1, help="parent gate, eV/atom")
    parser.add_argument("--fmax", type=float, default=0.1, help="relaxation force limit, eV/Å")
    parser.add_argument("--steps", type=int, default=300, help="relaxation step cap")
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=3600.0,
        help="wall-clock limit per relaxation, s (a batch shares it: keep it large on a busy CPU)",
    )
    parser.add_argument("--max-atoms", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=4096, help="answer tokens per prompt")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--max-concurrency", type=int, default=8, help="LLM requests at a time")
    parser.add_argument("--device", default=None, help="MLIP device: cpu or cuda (default: auto)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--hull", default="mp20-subset", help="hull reference: mp20-subset, mp-2023-01-10 or a file"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "bench_llm_search")
    parser.add_argument("--baseline-only", action="store_true", help="builtin proposer only")
    parser.add_argument("--skip-baseline", action="store_true", help="LLM run only")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "llm_search.json")
    args = parser.parse_args(argv)
    if not args.baseline_only and not (args.base_url and args.model):
        parser.error("give --base-url and --model, or --baseline-only")
    if args.baseline_only and args.skip_baseline:
        parser.error("--baseline-only and --skip-baseline exclude each other")
    return args


def children_per_iteration(args: argparse.Namespace) -> int:
    """MatLLMSearch: the population is split into groups of `parents` parents, one prompt each."""
    return max(1, args.population // args.parents_per_prompt) * args.children_per_prompt


def protocol_spec(args: argparse.Namespace, label: str, proposer: dict[str, Any]) -> dict[str, Any]:
    """The run spec of the protocol with one proposer."""
    return {
        "name": f"mls-{label}-p{args.population}-i{args.iterations}-s{args.seed}"
        + (
            "" if args.hull == "mp20-subset" else "-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(args.hull).stem)
        ),
        "seed": args.seed,
        "output": str(args.output),
        "chemistry": {"elements": ELEMENTS, "max_atoms": args.max_atoms, "max_elements": 6},
        "population_size": args.population,
        "children_per_generation": children_per_iteration(args),
        "generations": args.iterations,
        "proposers": [proposer],
        "mlip": {
            "fmax": args.fmax,
            "steps": args.steps,
            "timeout_s": args.timeout_s,
            "device": args.device,
        },
        "objectives": [{"name": "e_above_hull", "direction": "min", "bounds": [None, args.ehull_gate]}],
        "metrics": {"stable_threshold": STABLE_EV_PER_ATOM},
        "reference": {"hull": args.hull},
    }


def llm_proposer(args: argparse.Namespace) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "kind": "openai",
        "model": args.model,
        "base_url": args.base_url,
        "k_parents": args.parents_per_prompt,
        "structures_per_prompt": args.children_per_prompt,
        "max_tokens": args.max_tokens,
        "temperature": args.temperature,
        "max_concurrency": args.max_concurrency,
    }
    key = os.environ.get(args.api_key_env)
    if key:
        entry["api_key"] = key  # never written to the run folder
    return entry


def run_protocol(spec: dict[str, Any]) -> tuple[Run, float]:
    """Run (or resume, when its folder exists) one protocol run; wall time in s."""
    started = time.perf_counter()
    run_dir = Path(spec["output"]) / spec["name"]
    search = Search(spec)
    run = search.resume() if (run_dir / "run.sqlite").is_file() else search.run()
    return run, time.perf_counter() - started


def table_row(run: Run, label: str, wall_s: float) -> dict[str, Any]:
    """MatLLMSearch's table from the store: children of iterations 1.. (seeds excluded)."""
    children = [c for c in run.candidates() if c.generation >= 1]
    relaxed = [c for c in children if c.status == Status.SCORED and c.e_above_hull is not None]
    valid = [
        c for c in children if c.status in (Status.VALID, Status.SCORED, Status.FAILED, Status.DUPLICATE)
    ]
    metrics = [m for g, m in run.generation_metrics().items() if g >= 1]
    n_novel = sum(m.get("n_novel") or 0 for m in metrics)
    n_sun = sum(m.get("n_sun") or 0 for m in metrics)
    by_call = {c.extra["prompt_hash"]: c.extra for c in children if "prompt_hash" in c.extra}

    def rate(n: int, d: int) -> float | None:
        return round(n / d, 4) if d else None

    return {
        "proposer": label,
        "proposed": len(children),
        "validity": rate(len(valid), len(children)),
        "relaxed": len(relaxed),
        "failed_relaxations": sum(c.status == Status.FAILED for c in children),
        "metastable_rate": rate(sum(c.e_above_hull < METASTABLE_EV_PER_ATOM for c in relaxed), len(relaxed)),
        "stable_rate": rate(sum(c.e_above_hull <= STABLE_EV_PER_ATOM for c in relaxed), len(relaxed)),
        "novelty_rate": rate(n_novel, len(relaxed)),
        "n_sun": n_sun,
        "sun_rate": rate(n_sun, len(children)),
        "llm_calls": len(by_call),
        "tokens": sum(e.get("prompt_tokens", 0) + e.get("completion_tokens", 0) for e in by_call.values()),
        "cost_usd": (
            round(sum(e["cost_usd"] for e in by_call.values()), 4)
            if by_call and all(e.get("cost_usd") is not None for e in by_call.values())
            else None
        ),
        "output_modes": sorted({e.get("output_mode", "free_text") for e in by_call.values()}),
        "repaired": sum(1 for c in children if c.structure is not None and "repair_of" in c.extra),
        "wall_time_s": round(wall_s, 1),
    }


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f} %"


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        "| proposer | proposed | validity | relaxed | metastable | stable | novelty | S.U.N. | "
        "tokens | cost (USD) | wall (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cost = "—" if r["cost_usd"] is None else f"{r['cost_usd']:.2f}"
        print(
            f"| {r['proposer']} | {r['proposed']} | {_pct(r['validity'])} | {r['relaxed']} | "
            f"{_pct(r['metastable_rate'])} | {_pct(r['stable_rate'])} | {_pct(r['novelty_rate'])} | "
            f"{r['n_sun']} ({_pct(r['sun_rate'])}) | {r['tokens']:,} | {cost} | {r['wall_time_s']} |"
        )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    runs: list[tuple[str, dict[str, Any]]] = []
    if not args.skip_baseline:
        runs.append(("builtin", {"kind": "builtin"}))
    if not args.baseline_only:
        runs.append((re.sub(r"[^A-Za-z0-9_.-]+", "_", args.model), llm_proposer(args)))
    rows = []
    for label, proposer in runs:
        run, wall = run_protocol(protocol_spec(args, label, proposer))
        rows.append(
            table_row(run, label if label == "builtin" else f"openai:{args.model}", wall)
            | {"run_dir": str(run.run_dir)}
        )
    protocol = {
        "population": args.population,
        "parents_per_prompt": args.parents_per_prompt,
        "children_per_prompt": args.children_per_prompt,
        "children_per_iteration": children_per_iteration(args),
        "iterations": args.iterations,
        "ehull_gate_ev_per_atom": args.ehull_gate,
        "fmax_ev_per_a": args.fmax,
        "steps": args.steps,
        "timeout_s": args.timeout_s,
        "max_atoms": args.max_atoms,
        "seed": args.seed,
        "hull": args.hull,
    }
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs",
        "protocol": protocol,
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"protocol: {json.dumps(protocol)}")
    print_table(rows)


if __name__ == "__main__":
    main()

"""Command line: a thin typer shell over the library. User errors print one line and exit with code 2."""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from matsearch.errors import ExportWarning, MatsearchError
from matsearch.export_formats import EXPORT_FORMATS, check_formats
from matsearch.finetune_settings import FinetuneSettings

app = typer.Typer(
    help="Generative materials discovery: propose, relax, score and select crystal structures.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    """`--version`: the installed package's version (importlib.metadata)."""
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("matsearch")
    except PackageNotFoundError:  # run from a source tree that is not installed
        from matsearch import __version__ as number
    sys.stdout.write(f"matsearch {number}\n")
    raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Generative materials discovery: propose, relax, score and select crystal structures."""


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn MatsearchError into 'error: …' on stderr and exit code 2."""
    try:
        yield
    except MatsearchError as exc:
        message = " ".join(str(exc).split())  # one line, whatever a lower layer put in the message
        err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@contextmanager
def _progress_bar() -> Iterator[Callable]:
    """A rich progress bar per generation, fed by the engine's Progress events."""
    from matsearch.progress import Progress as EngineProgress

    columns = (
        TextColumn("[bold]gen {task.fields[generation]:>3}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    tasks: dict[int, int] = {}
    with Progress(*columns, console=console, transient=False, disable=not console.is_terminal) as bar:

        def update(event: EngineProgress) -> None:
            counts = event.counts
            text = (
                f"{event.stage:<10} proposed {counts.get('proposed', 0)} · valid {counts.get('valid', 0)}"
                f" · unique {counts.get('unique', 0)} · relaxed {counts.get('relaxed', 0)}"
                f" · metastable {counts.get('metastable', 0)}"
            )
            if event.generation not in tasks:
                tasks[event.generation] = bar.add_task(text, total=None, generation=event.generation)
            done = counts.get("proposed", 0) - counts.get("unique", 0) + counts.get("relaxed", 0)
            done += counts.get("failed", 0)
            bar.update(tasks[event.generation], description=text, total=event.total or None, completed=done)
            if not console.is_terminal and event.stage == "done":
                console.print(f"generation {event.generation}: {text.split(maxsplit=1)[1]}")

        yield update


@app.command()
def run(
    spec: Annotated[Path, typer.Argument(help="Run spec (YAML).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved spec and stop.")] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="Replace an existing run of the same name (after the spec and checks pass)."
        ),
    ] = False,
) -> None:
    """Start a new search described by SPEC; results go to <output>/<name>/. Everything checkable
    beforehand (spec, files, data, API keys, models) is checked before the run folder is created."""
    from matsearch.spec import dump_spec, load_spec

    with _user_errors():
        resolved = load_spec(spec)
        from matsearch.preflight import check_inputs

        check_inputs(resolved)
        if dry_run:
            sys.stdout.write(dump_spec(resolved))
            return
        from matsearch.engine import Search

        with _progress_bar() as update:
            result = Search(resolved, on_progress=update).run(overwrite=overwrite)
    _print_status(result.run_dir, top=20)


@app.command()
def resume(
    run_dir: Annotated[Path, typer.Argument(help="A run folder, e.g. runs/quickstart.")],
) -> None:
    """Continue an interrupted run from its store; nothing already scored is scored again."""
    from matsearch.engine import Search

    with _user_errors(), _progress_bar() as update:
        result = Search.from_run_dir(run_dir, on_progress=update).resume()
    _print_status(result.run_dir, top=20)


@app.command()
def status(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    top: Annotated[int, typer.Option(help="How many of the best candidates to list.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Per generation counts and best objective values (this generation and so far), the CSP answer,
    proposer and operator yields, and the best candidates with space group, scores (with units) and
    known id or new. Works while the run runs. --json follows matsearch/schemas/status.schema.json."""
    with _user_errors():
        if as_json:
            from matsearch.summary import run_summary

            sys.stdout.write(json.dumps(run_summary(run_dir, top), indent=2) + "\n")
        else:
            _print_status(run_dir, top)


def _print_status(run_dir: Path, top: int) -> None:
    from matsearch.status_view import print_status
    from matsearch.summary import run_summary

    print_status(console, run_summary(run_dir, top))


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    out: Annotated[Path | None, typer.Option(help="Output folder (default RUN_DIR/export).")] = None,
    fmt: Annotated[
        list[str],
        typer.Option("--format", "-f", help=f"{', '.join(EXPORT_FORMATS)} (repeatable; default all)."),
    ] = list(EXPORT_FORMATS),  # noqa: B006 - typer reads the default list
    top: Annotated[int | None, typer.Option(help="Only the N lowest-e_hull candidates.")] = None,
    max_ehull: Annotated[
        float | None, typer.Option("--max-ehull", help="Only candidates with e_hull ≤ X eV/atom.")
    ] = None,
    vasp: Annotated[
        str | None, typer.Option("--vasp", help="Also write VASP inputs: MPRelaxSet or MPScanRelaxSet.")
    ] = None,
    include_known: Annotated[
        bool,
        typer.Option("--include-known", help="Also known materials and artefacts (elemental, molecular)."),
    ] = False,
    cif_p1: Annotated[
        bool, typer.Option("--cif-p1", help="Also write each relaxed cell as it is (P1) to <stem>_P1.cif.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an earlier export in the output folder.")
    ] = False,
    priority: Annotated[
        bool,
        typer.Option(
            "--priority",
            help="Order (and with --top choose) by the DFT acquisition rule e_hull − |Δe_hull| of two "
            "models, lowest first; computes the disagreement where it is missing.",
        ),
    ] = False,
) -> None:
    """Write relaxed candidates for DFT: symmetrised CIF, species-sorted POSCAR, extxyz with energy,
    forces and stress, a manifest (candidates.csv, candidates.json) and optionally VASP inputs.
    By default only new materials (not known, not elemental or molecular) are written; an output
    folder that is not empty is refused unless --force."""
    from matsearch.dft.compare import dft_views
    from matsearch.dft_export import PotcarSkippedWarning, VaspInputSetName, export_vasp
    from matsearch.export import VASP_DIR, export_candidates
    from matsearch.run import Run

    with _user_errors():
        check_formats(fmt)
        if vasp is not None and vasp not in {v.value for v in VaspInputSetName}:
            choices = ", ".join(v.value for v in VaspInputSetName)
            raise MatsearchError(f"unknown VASP input set '{vasp}'; allowed: {choices}")
        out_dir = out or run_dir / "export"
        result = Run(run_dir)
        if priority:
            from matsearch.uncertainty import add_uncertainty, by_priority

            add_uncertainty(run_dir, result.spec())
            chosen = by_priority(result.best(None, max_e_above_hull=max_ehull, new_only=not include_known))
            chosen = chosen if top is None else chosen[:top]
        else:
            chosen = result.best(top, max_e_above_hull=max_ehull, new_only=not include_known)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ExportWarning)
            warnings.simplefilter("always", PotcarSkippedWarning)
            written = export_candidates(
                chosen,
                out_dir,
                fmt,
                result.spec().objectives,
                cif_p1=cif_p1,
                force=force,
                dft=dft_views(result.candidates(), result.dft_results()),
            )
            if vasp is not None:
                written += export_vasp(chosen, out_dir / VASP_DIR, vasp)
        for warning in caught:
            if issubclass(warning.category, (ExportWarning, PotcarSkippedWarning)):
                err_console.print(f"[yellow]warning:[/] {warning.message}", highlight=False)
    console.print(f"wrote {len(written)} files for {len(chosen)} candidates to {out_dir}")


@app.command()
def ingest(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    paths: Annotated[
        list[Path], typer.Argument(help="vasprun.xml[.gz] / OUTCAR files, or folders holding them.")
    ],
) -> None:
    """Bring DFT results back into the run: each VASP result is matched to its candidate (export
    metadata id in its folder, else by structure), scored with MP2020 corrections on the run's hull
    and stored with every ionic step, next to the MLIP values. One line per file; exit 2 when
    nothing could be ingested; a file already ingested changes nothing."""
    from matsearch.run import Run

    with _user_errors():
        outcomes = Run(run_dir).ingest(paths)
    for outcome in outcomes:
        if outcome.status == "error":
            err_console.print(
                f"[bold red]error:[/] {escape(outcome.message)}", highlight=False, soft_wrap=True
            )
        else:
            console.print(
                f"{outcome.status}: {outcome.path}: {escape(outcome.message)}",
                highlight=False,
                soft_wrap=True,
            )
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ingested", "unchanged", "error")}
    if counts["ingested"] == 0:
        if counts["error"]:
            raise typer.Exit(2)
        console.print("nothing changed")
        return
    console.print(
        f"ingested {counts['ingested']}, already there {counts['unchanged']}, failed {counts['error']}",
        highlight=False,
    )


@app.command()
def uncertainty(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda if available).")] = None,
) -> None:
    """Score every scored candidate with a second model and store the disagreement (energy per
    atom and e_hull, eV/atom): the uncertainty `status`, `report` and `export --priority` use."""
    from matsearch.run import Run
    from matsearch.uncertainty import add_uncertainty

    with _user_errors():
        n = add_uncertainty(run_dir, Run(run_dir).spec(), device=device)
    console.print(
        f"uncertainty computed for {n} candidates" if n else "nothing changed: every scored candidate has one"
    )


@app.command()
def rescore(
    run_dir: Annotated[Path, typer.Argument(help="A run folder.")],
    model: Annotated[str, typer.Option(help="Model file (e.g. from `mlip finetune --from-run`) or name.")],
    out: Annotated[Path | None, typer.Option(help="New run folder (default: <run_dir>-rescored).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda if available).")] = None,
) -> None:
    """Re-relax and re-score the run's scored candidates with MODEL into a new run folder (the
    original stays untouched) and print how the ranking moved."""
    from matsearch.rescore import rescore_run

    with _user_errors():
        result = rescore_run(run_dir, model, out, device=device)
    for row in result["moves"][:20]:
        console.print(
            f"#{row['id']} {row['formula']}: rank {row['rank_before']} → {row['rank_after']}, "
            f"e_hull {row['e_hull_before']:.3f} → {_num(row['e_hull_after'])} eV/atom",
            highlight=False,
        )
    console.print(f"rescored {result['rescored']} candidates into {result['run_dir']}", highlight=False)


def _num(value: float | None) -> str:
    return "failed" if value is None else f"{value:.3f}"


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="A run folder.")]) -> None:
    """Plots and a self-contained HTML page: Pareto front, objectives, e_hull, phase diagram, lineage."""
    from matsearch.report import make_report

    with _user_errors():
        path = make_report(run_dir)
    console.print(f"report written to {path}")


data_app = typer.Typer(
    help="Reference datasets: local mirror, cache and official sources.", no_args_is_help=True
)
app.add_typer(data_app, name="data")


@data_app.command("list")
def data_list(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every registered dataset: shipped, mirrored (MATSEARCH_DATA_DIR), cached, downloadable or
    unavailable, where it is, and its full official source addresses."""
    from matsearch.data import availability, list_datasets, locate

    rows = [
        {
            "name": d.name,
            "availability": availability(d).value,
            "path": None if (path := locate(d)) is None else str(path),
            "sources": list(d.urls),
            "licence": d.licence,
            "description": d.description,
        }
        for d in list_datasets()
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        console.print(
            f"[bold]{row['name']}[/]  [cyan]{row['availability']}[/]  {row['path'] or ''}", soft_wrap=True
        )
        for url in row["sources"]:
            console.print(f"    source: {url}", soft_wrap=True, highlight=False)


@data_app.command("fetch")
def data_fetch(names: Annotated[list[str], typer.Argument(help="Dataset names (see `data list`).")]) -> None:
    """Download datasets into the cache (checksums verified), for later offline runs."""
    from matsearch.data import get_dataset, resolve

    with _user_errors():
        for name in names:
            console.print(f"{name}: {resolve(get_dataset(name))}")


mlip_app = typer.Typer(help="The in-house MLIP: fine-tuning.", no_args_is_help=True)
app.add_typer(mlip_app, name="mlip")


@contextmanager
def _epoch_bar(epochs: int) -> Iterator[Callable[[dict], None]]:
    """A rich progress bar on stderr over the fine-tuning epochs, showing each epoch's loss (a line
    per epoch when stderr is not a terminal); stdout stays the JSON summary."""
    columns = (
        TextColumn("[bold]fine-tuning[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, disable=not err_console.is_terminal) as bar:
        task = bar.add_task("epochs", total=epochs)

        def update(record: dict) -> None:
            text = f"loss {record['train_loss']:.4g}"
            if "validation_energy_mae_ev_per_atom" in record:
                text += f" · validation energy MAE {record['validation_energy_mae_ev_per_atom']:.4g} eV/atom"
            bar.update(task, completed=int(record["epoch"]), description=text)
            if not err_console.is_terminal:
                err_console.print(f"epoch {int(record['epoch'])}/{epochs}: {text}", highlight=False)

        yield update


@contextmanager
def _warnings_on_stderr() -> Iterator[None]:
    """Show library warnings (e.g. AtomRef kept) at once, as one 'warning:' line on stderr."""

    def show(message: Warning | str, *args: object, **kwargs: object) -> None:
        err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = show
        yield


FINETUNE = FinetuneSettings()  # the option defaults of `mlip finetune`


@mlip_app.command("finetune")
def mlip_finetune(
    out: Annotated[Path, typer.Option(help="Model file to write; load it with mlip.model: PATH.")],
    data: Annotated[
        Path | None, typer.Argument(help="Labelled structures: ASE .db, .extxyz, or pymatgen JSON.")
    ] = None,
    from_run: Annotated[
        Path | None,
        typer.Option("--from-run", help="Train on the DFT frames ingested into this run (every ionic step)."),
    ] = None,
    base: Annotated[str, typer.Option(help="Starting model name or file.")] = "default",
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training set.")] = FINETUNE.epochs,
    lr: Annotated[float, typer.Option(help="Learning rate (cosine decay to lr/100).")] = FINETUNE.lr,
    train_layer: Annotated[
        list[str], typer.Option("--train-layer", help="Backbone parts to train (repeatable).")
    ] = list(FINETUNE.train_layers),  # noqa: B006 - typer needs a list default
    les: Annotated[
        bool,
        typer.Option(
            "--les/--no-les",
            help="Attach a Latent Ewald long-range head (if the base has none) and train it. Off by "
            "default: a new head trained on little data adds parameters without a measured gain; "
            "use it for ionic systems with enough data.",
        ),
    ] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Structures per optimiser step.")
    ] = FINETUNE.batch_size,
    force_weight: Annotated[
        float, typer.Option(help="Loss weight of forces (eV/Å).")
    ] = FINETUNE.force_weight,
    stress_weight: Annotated[
        float, typer.Option(help="Loss weight of stress (GPa).")
    ] = FINETUNE.stress_weight,
    validation_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.99, help="Share of the data held out for validation.")
    ] = 0.1,
    atom_ref_min_structures: Annotated[
        int,
        typer.Option(
            min=1,
            help="Refit AtomRef (per-element reference energies) only when every element is in at "
            "least this many training structures; otherwise keep it and warn.",
        ),
    ] = FINETUNE.atom_ref_min_structures,
    seed: Annotated[
        int, typer.Option(help="Random seed (split, batches, head initialisation).")
    ] = FINETUNE.seed,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (default: cuda if available).")] = None,
) -> None:
    """Fine-tune on energies, forces and stresses (progress bar with the loss per epoch) and save a
    model file; prints a JSON summary. AtomRef is refitted only on enough data per element."""
    from matsearch.mlip.training.finetune import finetune_cli

    with _user_errors(), _warnings_on_stderr(), _epoch_bar(epochs) as on_epoch:
        if (data is None) == (from_run is None):
            raise MatsearchError("give either a DATA file or --from-run RUN_DIR (one of the two)")
        if from_run is not None:
            from matsearch.dft.run_frames import run_training_set

            dataset = run_training_set(from_run, base)
        settings = FinetuneSettings(
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            train_layers=tuple(train_layer),
            force_weight=force_weight,
            stress_weight=stress_weight,
            atom_ref_min_structures=atom_ref_min_structures,
            seed=seed,
        )
        summary = finetune_cli(
            data if data is not None else dataset,
            out,
            settings,
            base=base,
            les=les,
            validation_fraction=validation_fraction,
            device=device,
            on_epoch=on_epoch,
            source=None if from_run is None else f"the DFT frames ingested into {from_run}",
        )
    sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")


if __name__ == "__main__":
    app()

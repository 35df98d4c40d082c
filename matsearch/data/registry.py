"""Reference datasets: a registry of named files, each with its official public source and checksum.

The compact reference data that the defaults need ships inside the package
(``matsearch/data/reference/``, sources and licences in its NOTICE file): the hull table, the
elemental references and the known-materials index. Every other file is looked for, in order, in
the local mirror named by ``MATSEARCH_DATA_DIR`` (same relative path as in the registry, e.g.
``mp20/mp20_structures.csv.gz``), in the user cache (``MATSEARCH_CACHE_DIR``, default
``~/.cache/matsearch``), and is otherwise downloaded into the cache (atomic write, checksum
verified). ``MATSEARCH_OFFLINE=1`` forbids downloads. Mirror and cached files are checked against
their pinned checksum on first use in a process (an MP-20 table assembled from CDVAE's CSVs, which
have no published checksum, by its row counts when it is built). Importing this module reads
nothing.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import logging
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path

import pandas as pd

from matsearch.errors import DataError

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "MATSEARCH_DATA_DIR"
CACHE_DIR_ENV = "MATSEARCH_CACHE_DIR"
OFFLINE_ENV = "MATSEARCH_OFFLINE"
DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK_BYTES = 1 << 20
_USER_AGENT = "matsearch/0.1 (reference data download)"

# CSV reading that keeps formulas such as "NaN" (sodium nitride) as text.
CSV_OPTIONS: dict[str, object] = {"keep_default_na": False, "na_values": [""]}

MP20_SPLITS = ("train", "val", "test")
MP20_COLUMNS = (
    "material_id",
    "split",
    "reduced_formula",
    "pretty_formula",
    "spacegroup.number",
    "formation_energy_per_atom",
    "band_gap",
    "e_above_hull_cdvae",
    "cif",
)


class Fetch(StrEnum):
    """How a connected machine obtains a dataset that is neither in the mirror nor in the cache."""

    COPY = "copy"  # the bytes at the single URL are the file; verified against the pinned checksum
    CDVAE_SPLITS = "cdvae-splits"  # CDVAE train/val/test CSVs joined into one table; rows counted
    MIRROR_ONLY = "mirror-only"  # derived file; the URLs say where its data comes from
    SHIPPED = "shipped"  # compact derived file inside the package; the URLs say where it comes from


@dataclass(frozen=True)
class Dataset:
    """One registered data file."""

    name: str
    relpath: str  # path under the mirror and the cache; SHIPPED: under matsearch/data/reference/
    urls: tuple[str, ...]  # official public source(s)
    checksum: str  # "sha256:<hex>" or "md5:<hex>" of the file at `relpath`
    description: str
    licence: str
    fetch: Fetch = Fetch.COPY
    split_rows: tuple[int, ...] = ()  # CDVAE_SPLITS: rows expected in train, val, test


_CDVAE_RAW = "https://raw.githubusercontent.com/txie-93/cdvae/main/data/mp_20"
_FIGSHARE = "https://figshare.com/ndownloader/files"
_MATCALC_RAW = "https://raw.githubusercontent.com/materialsvirtuallab/matcalc"
_ORB_RAW = "https://raw.githubusercontent.com/orbital-materials/orb-models"
_MP_CC = "CC BY 4.0 (Materials Project)"


def _mlearn(element: str, split: str, sha256: str) -> Dataset:
    return Dataset(
        name=f"mlearn-{element.lower()}-{split}",
        relpath=f"mlip/mlearn_{element}_{split}.json.gz",
        urls=(f"https://github.com/materialsvirtuallab/mlearn/tree/master/data/{element}",),
        checksum=f"sha256:{sha256}",
        description=f"mlearn {element} {split} set: DFT energies, forces (eV/Å), virial (kB)",
        licence="BSD-3-Clause (mlearn)",
        fetch=Fetch.MIRROR_ONLY,
    )


def _mp20_pilot(split: str, sha256: str) -> Dataset:
    return Dataset(
        name=f"mp20-pilot-{split}",
        relpath=f"mp20/mp20_pilot_{split}.csv.gz",
        urls=(f"{_CDVAE_RAW}/{split}.csv",),
        checksum=f"sha256:{sha256}",
        description=f"1,000-row sample of the MP-20 {split} split in the original CDVAE columns",
        licence=_MP_CC,
        fetch=Fetch.MIRROR_ONLY,
    )


_DATASETS: tuple[Dataset, ...] = (
    Dataset(
        name="mp20",
        relpath="mp20/mp20_structures.csv.gz",
        urls=tuple(f"{_CDVAE_RAW}/{split}.csv" for split in MP20_SPLITS),
        checksum="sha256:0187d7ca93a3c0b93827296870810f34218587ec17f53ff37328d205ae05e9b9",
        description="MP-20 (CDVAE train/val/test split): CIF, formation energy (eV/atom), band gap "
        "(eV), e_above_hull (eV/atom)",
        licence=_MP_CC,
        fetch=Fetch.CDVAE_SPLITS,
        split_rows=(27138, 9047, 9046),
    ),
    _mp20_pilot("train", "a89a708d16d80401fe256d6742680f2e02ed5746f1a685cfea1b509754fe728e"),
    _mp20_pilot("val", "b03d4aeb363a7ec3018cea66e2e69fce3ca3b518c900531a03a1266d5d392eb6"),
    _mp20_pilot("test", "c0b5922164322338d0e282d4429b2dc8ab31ffa39d456d05e102b6ec88ea7262"),
    Dataset(
        name="mp-formation-energies",
        relpath="mp_hull_mp20_mpts52.csv.gz",
        urls=(
            "https://github.com/txie-93/cdvae/tree/main/data/mp_20",
            "https://github.com/jiaor17/DiffCSP/tree/main/data/mpts_52",
        ),
        checksum="sha256:6fdc4006b1251d1240fbd839fc4cbdd8828e1c4e0355bea2473f80885902e7c5",
        description="DFT formation energies (eV/atom, MP2020-style corrections) and published "
        "e_above_hull of the 47,649 MP-20 and MPTS-52 materials: a subset of the MP convex hull",
        licence=_MP_CC,
        fetch=Fetch.SHIPPED,
    ),
    Dataset(
        name="mp20-known-structures",
        relpath="mp20_known_structures.npz",
        urls=("https://github.com/txie-93/cdvae/tree/main/data/mp_20",),
        checksum="sha256:f10c5515d2709c60a24eff9d3dafffc3075868d7b8b7f19a0f7cb5c88d477978",
        description="Known-materials index: 33,548 MP-20 crystals (CDVAE train/val/test) with id, "
        "space group, formation energy and e_above_hull, stored compactly",
        licence=f"{_MP_CC}; split: CDVAE (MIT)",
        fetch=Fetch.SHIPPED,
    ),
    Dataset(
        name="mp-energies-2023-01-10",
        relpath="mp/2023-01-10-mp-energies.csv.gz",
        urls=(f"{_FIGSHARE}/49083124",),
        checksum="sha256:046814c1c556e0e5c9531df00650c56cb197b2c01ba22695a46efcfb4876a4a8",
        description="Formation energies and e_above_hull (eV/atom) of all 154,718 MP materials "
        "(GGA/GGA+U, 2023-01-10), as published by Matbench Discovery",
        licence=_MP_CC,
    ),
    Dataset(
        name="mp-elemental-refs-2023-02-07",
        relpath="mp_elemental_refs_2023-02-07.json",
        urls=(f"{_FIGSHARE}/40387775",),
        checksum="sha256:60051109839a39f4cd89b9117080774ce6f4751c990c67db347d3ba35c380d02",
        description="Energy per atom (eV/atom) of the lowest-energy MP entry of each element "
        "(2023-02-07), Matbench Discovery's elemental references",
        licence="CC BY 4.0 (Materials Project via Matbench Discovery)",
        fetch=Fetch.SHIPPED,
    ),
    Dataset(
        name="mp-patched-phase-diagram-2023-02-07",
        relpath="mp/2023-02-07-ppd-mp.pkl.gz",
        urls=(f"{_FIGSHARE}/48241624",),
        checksum="md5:60d19d691fa1d338aa496a40a9641bef",
        description="pymatgen PatchedPhaseDiagram of all MP ComputedStructureEntries (2023-02-07), "
        "Matbench Discovery's convex hull",
        licence="CC BY 4.0 (Materials Project via Matbench Discovery)",
    ),
    Dataset(
        name="matcalc-mp-pbe-element-refs",
        relpath="hull/mp_pbe_element_refs.json.gz",
        urls=(
            f"{_MATCALC_RAW}/5113dcc3b4114559a1d67d5acd8f53106c0f6786/src/matcalc/elemental_refs/"
            "MP-PBE-Element-Refs.json.gz",
        ),
        checksum="sha256:66b350622126ca725c0ab1197b2ec3e27f752ef25dfeff21eb1db7be9ad72f0c",
        description="MP PBE elemental reference structures and energies (matcalc)",
        licence="BSD-3-Clause (matcalc); data CC BY 4.0 (Materials Project)",
    ),
    Dataset(
        name="matcalc-matpes-pbe-element-refs",
        relpath="hull/matpes_pbe_element_refs.json.gz",
        urls=(
            f"{_MATCALC_RAW}/bfc00404cc69d6b20ce3ed5e9663e6cabcfda29c/src/matcalc/elemental_refs/"
            "MatPES-PBE-Element-Refs.json.gz",
        ),
        checksum="sha256:24b804bcba5d4e7bffa23ba141bfe1364154fd8fea5547655036610a7be495af",
        description="MatPES PBE elemental reference structures with energies, forces, stresses",
        licence="BSD-3-Clause (matcalc)",
    ),
    Dataset(
        name="matcalc-matpes-r2scan-element-refs",
        relpath="hull/matpes_r2scan_element_refs.json.gz",
        urls=(
            f"{_MATCALC_RAW}/db843c85a44cf98e44e4e290471563b2c014572c/src/matcalc/elemental_refs/"
            "MatPES-r2SCAN-Element-Refs.json.gz",
        ),
        checksum="sha256:23b9c0b6885e6fa52510b9c99ab8bd86f0db74c7e8589cfc26d3fbc6287e85cc",
        description="MatPES r2SCAN elemental reference structures with energies, forces, stresses",
        licence="BSD-3-Clause (matcalc)",
    ),
    Dataset(
        name="matcalc-mp-binary-elasticity",
        relpath="elastic/mp_binary_pbe_elasticity_2025.1.json.gz",
        urls=(
            f"{_MATCALC_RAW}/27f2d5f44b2bc045ff47446c599a3b6aba298b7f/benchmark_data/"
            "mp-binary-pbe-elasticity-2025.1.json.gz",
        ),
        checksum="sha256:5689599491322805bda913663eeef8d567f64ada80c90173d50fb7b6fb0b5896",
        description="MP binary compounds: structure, bulk_modulus_vrh and shear_modulus_vrh (GPa)",
        licence="BSD-3-Clause (matcalc); data CC BY 4.0 (Materials Project)",
    ),
    _mlearn("Cu", "test", "19c59bbef8f02df8603957c3208afd427a5ebd66e888a791af29939f359442d1"),
    _mlearn("Ge", "test", "82652d0a0b30cb7a443ac4777b561add1ec12e101c5350f4d645376ac71948e6"),
    _mlearn("Ge", "training", "6fefce0b409da510e27f0a4f1ac6c21865f5b5bba44c669489f81171ffb3326f"),
    _mlearn("Li", "test", "cedd3f5475fe77aca22ce71e0f80273bd4f6cac0e748411ebab497a06cac09c2"),
    _mlearn("Li", "training", "9d3472f59ea350e263b4d8d3a08c48ac74f69e61a94c13abb1e1a7480988b590"),
    _mlearn("Mo", "test", "bf14d52046e437c2c22c92a826270efc23b0319212e5e67165260f31bd77320c"),
    _mlearn("Mo", "training", "d1b31512ce9b41b16a2ff438ce365bd92f445acb9d865582dde4a3be9966a684"),
    _mlearn("Ni", "test", "ba3ed293f1ee45d112dab89caf45fb8ab6b90bacf5b12ad581059871705dd593"),
    _mlearn("Si", "test", "997bebfb07ec71e8f03620eea081da395840ac7393b60e1361d54b3a49f5cf29"),
    _mlearn("Si", "training", "10339b3dbb45ba0e738673c4c4fa43199ee65fe37c4da240d103f10c9800b2dc"),
    Dataset(
        name="orb-10-mptraj-systems",
        relpath="mlip/orb_10_mptraj_systems.db",
        urls=(f"{_ORB_RAW}/8a6c704117a91c75b7aa3c4370196d3ad653cff1/tests/fixtures/10_mptraj_systems.db",),
        checksum="sha256:26a9b36e6ceab4ff501cdbcc603a781ec3d5ceb6d0ad1a75d0fd56396e5f55e6",
        description="ASE database of 10 MPtrj frames with energy (eV), forces (eV/Å), stress",
        licence="Apache-2.0 (orb-models)",
    ),
    Dataset(
        name="orb-10-thin-mptraj-systems",
        relpath="mlip/orb_10_thin_mp_traj_systems.db",
        urls=(
            f"{_ORB_RAW}/d5afa3559dc48e74494c6e96c84bc6d647d3f359/tests/common/atoms/fixtures/"
            "10_thin_mp_traj_systems.db",
        ),
        checksum="sha256:02874d1619aad9e0a7177703cdb9340677a4f28ee20cfd4eeefd623f8c8bc4f1",
        description="ASE database of 10 thin MPtrj frames: energy (eV), forces (eV/Å), stress",
        licence="Apache-2.0 (orb-models)",
    ),
    Dataset(
        name="sevennet-hfo2-outcars",
        relpath="mlip/sevennet_hfo2_outcars.tar.gz",
        urls=("https://github.com/MDIL-SNU/SevenNet/tree/main/example_inputs/data",),
        checksum="sha256:25e76664cb6f3b63668d313b52a1b3ac9119da188043036ed59e6c1eb9770c3a",
        description="10 VASP OUTCARs of 96-atom HfO2 (SevenNet examples)",
        licence="MIT (SevenNet)",
        fetch=Fetch.MIRROR_ONLY,
    ),
)
DATASETS: dict[str, Dataset] = {d.name: d for d in _DATASETS}

# Hull references by name: the dataset holding their DFT formation energies.
HULL_REFERENCES: dict[str, str] = {
    "mp20-subset": "mp-formation-energies",
    "mp-2023-01-10": "mp-energies-2023-01-10",
}
ELEMENTAL_REFERENCES = "mp-elemental-refs-2023-02-07"


# --- locating files ---------------------------------------------------------------------------


def list_datasets() -> list[Dataset]:
    """All registered datasets, sorted by name."""
    return sorted(DATASETS.values(), key=lambda d: d.name)


def get_dataset(name: str) -> Dataset:
    """The registry entry called `name`."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(
            f"Unknown dataset '{name}'; registered datasets: {', '.join(sorted(DATASETS))}."
        ) from None


def dataset_path(name: str) -> Path:
    """Local path of dataset `name`: mirror, else cache, else downloaded into the cache."""
    return resolve(get_dataset(name))


def data_dir() -> Path | None:
    """The local mirror named by MATSEARCH_DATA_DIR, or None when unset."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """The download cache: MATSEARCH_CACHE_DIR, default ~/.cache/matsearch."""
    value = os.environ.get(CACHE_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "matsearch"


def downloads_allowed() -> bool:
    """False when MATSEARCH_OFFLINE is set to 1/true/yes."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("1", "true", "yes")


def shipped_dir() -> Path:
    """The folder of reference data inside the installed package."""
    return Path(str(resources.files("matsearch.data") / "reference"))


class Availability(StrEnum):
    """Where a dataset comes from on this machine, in the order they are tried."""

    SHIPPED = "shipped"  # inside the package
    MIRRORED = "mirrored"  # in MATSEARCH_DATA_DIR
    CACHED = "cached"  # in the download cache
    DOWNLOADABLE = "downloadable"  # fetched from its official source on first use
    UNAVAILABLE = "unavailable"  # mirror-only, or downloads are off


def availability(dataset: Dataset) -> Availability:
    """How `dataset` would be obtained now, without reading or downloading anything."""
    if dataset.fetch is Fetch.SHIPPED:
        return Availability.SHIPPED
    mirror = data_dir()
    if mirror is not None and (mirror / dataset.relpath).is_file():
        return Availability.MIRRORED
    if (cache_dir() / dataset.relpath).is_file():
        return Availability.CACHED
    if dataset.fetch is Fetch.MIRROR_ONLY or not downloads_allowed():
        return Availability.UNAVAILABLE
    return Availability.DOWNLOADABLE


def locate(dataset: Dataset) -> Path | None:
    """Where `dataset` already is (package, mirror, then cache), without downloading; None when absent."""
    if dataset.fetch is Fetch.SHIPPED:
        return shipped_dir() / dataset.relpath
    mirror = data_dir()
    for folder in (mirror, cache_dir()):
        if folder is not None and (folder / dataset.relpath).is_file():
            return folder / dataset.relpath
    return None


def resolve(dataset: Dataset) -> Path:
    """Local path of `dataset`, downloading it into the cache when the mirror and cache lack it."""
    if dataset.fetch is Fetch.SHIPPED:
        path = shipped_dir() / dataset.relpath
        if not path.is_file():
            raise DataError(
                f"Dataset '{dataset.name}' should ship with matsearch at {path} but is missing; "
                "reinstall matsearch (pip install --force-reinstall matsearch)."
            )
        return path
    mirror = data_dir()
    if mirror is not None and (mirror / dataset.relpath).is_file():
        path = mirror / dataset.relpath
        _verify_cached(str(path), dataset.checksum, dataset.name, dataset.urls[0])
        return path
    cached = cache_dir() / dataset.relpath
    if cached.is_file():
        if dataset.fetch is Fetch.COPY:
            _verify_cached(str(cached), dataset.checksum, dataset.name, dataset.urls[0])
        return cached
    where = f"{DATA_DIR_ENV} ({mirror or 'unset'}) or the cache ({cache_dir()})"
    if dataset.fetch is Fetch.MIRROR_ONLY:
        raise DataError(
            f"Dataset '{dataset.name}' is not in {where} and cannot be downloaded because it is "
            f"derived from {' and '.join(dataset.urls)}; set {DATA_DIR_ENV} to a mirror that holds "
            f"{dataset.relpath}, or change the spec key that names it."
        )
    if not downloads_allowed():
        raise DataError(
            f"Dataset '{dataset.name}' is not in {where} and downloads are off ({OFFLINE_ENV}=1); "
            f"run `matsearch data fetch {dataset.name}` on a connected machine, or set "
            f"{DATA_DIR_ENV} to a mirror that holds {dataset.relpath}."
        )
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"Dataset '{dataset.name}' cannot be downloaded because the cache folder "
            f"{cached.parent} cannot be created ({exc.strerror}); set {CACHE_DIR_ENV} to a "
            "writable folder."
        ) from exc
    if dataset.fetch is Fetch.CDVAE_SPLITS:
        _assemble_cdvae(dataset, cached, where)
    else:
        _download(dataset.urls[0], cached, dataset, where)
    logger.info("dataset %s downloaded to %s", dataset.name, cached)
    return cached


def _hash_file(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _split_checksum(checksum: str) -> tuple[str, str]:
    algorithm, _, expected = checksum.partition(":")
    if algorithm not in ("sha256", "md5") or not expected:
        raise ValueError(f"checksum '{checksum}' must look like 'sha256:<hex>' or 'md5:<hex>'")
    return algorithm, expected.lower()


@functools.lru_cache(maxsize=256)
def _verify_file(path: str, size: int, mtime_ns: int, checksum: str, name: str, url: str) -> None:
    algorithm, expected = _split_checksum(checksum)
    actual = _hash_file(Path(path), algorithm)
    if actual != expected:
        raise DataError(
            f"{path} (dataset '{name}') has {algorithm} {actual}, not the pinned {expected}; "
            f"replace it with the file from {url}."
        )


def _verify_cached(path: str, checksum: str, name: str, url: str) -> None:
    """Check `path` against `checksum` once per process (and again if the file changes)."""
    stat = os.stat(path)
    _verify_file(path, stat.st_size, stat.st_mtime_ns, checksum, name, url)


def _fetch_to(url: str, target: Path, dataset: Dataset, where: str) -> tuple[Path, str]:
    """Stream `url` into a temporary file next to `target`; return its path and hex digest."""
    algorithm, _ = _split_checksum(dataset.checksum)
    digest = hashlib.new(algorithm)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(name)
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response,
        ):
            while chunk := response.read(_CHUNK_BYTES):
                digest.update(chunk)
                out.write(chunk)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError | http.client.HTTPException):
            reason = getattr(exc, "reason", None) or exc
            raise DataError(
                f"Dataset '{dataset.name}' is not in {where}, and downloading {url} failed "
                f"({reason}); set {DATA_DIR_ENV} to a mirror that holds {dataset.relpath}."
            ) from exc
        raise
    return tmp, digest.hexdigest()


def _download(url: str, target: Path, dataset: Dataset, where: str) -> None:
    """Download `url` to `target` atomically, keeping it only if it matches the pinned checksum."""
    tmp, actual = _fetch_to(url, target, dataset, where)
    algorithm, expected = _split_checksum(dataset.checksum)
    if actual != expected:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"Download of dataset '{dataset.name}' from {url} has {algorithm} {actual}, not the "
            f"pinned {expected}, so it was discarded (corrupted transfer or changed upstream file)."
        )
    os.replace(tmp, target)


def _assemble_cdvae(dataset: Dataset, target: Path, where: str) -> None:
    """Download the CDVAE MP-20 split CSVs and join them into one table with the mirror's columns.

    Upstream publishes no checksums for these files, so each split is checked by its row count.
    """
    from pymatgen.core import Composition

    frames = []
    splits = zip(MP20_SPLITS, dataset.urls, dataset.split_rows, strict=True)
    for split, url, expected_rows in splits:
        tmp, _ = _fetch_to(url, target, dataset, where)
        try:
            raw = pd.read_csv(tmp, **CSV_OPTIONS)
        finally:
            tmp.unlink(missing_ok=True)
        if len(raw) != expected_rows:
            raise DataError(
                f"Download of MP-20 split '{split}' from {url} has {len(raw)} rows, not the "
                f"{expected_rows} of the CDVAE split, so it was discarded."
            )
        frames.append(
            pd.DataFrame(
                {
                    "material_id": raw["material_id"],
                    "split": split,
                    "reduced_formula": [Composition(f).reduced_formula for f in raw["pretty_formula"]],
                    "pretty_formula": raw["pretty_formula"],
                    "spacegroup.number": raw["spacegroup.number"],
                    "formation_energy_per_atom": raw["formation_energy_per_atom"],
                    "band_gap": raw["band_gap"],
                    "e_above_hull_cdvae": raw["e_above_hull"],
                    "cif": raw["cif"],
                }
            )
        )
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    os.close(fd)
    try:
        pd.concat(frames, ignore_index=True).to_csv(
            tmp, index=False, compression={"method": "gzip", "mtime": 0}
        )
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)

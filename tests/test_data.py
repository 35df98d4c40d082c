"""Dataset registry: mirror lookup with pinned checksums, offline errors, real HTTP downloads."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from matsearch import data
from matsearch.errors import DataError

MP20_TEST_ROWS = 9046  # CDVAE MP-20 test split, complete in the mirror
MP20_VAL_ROWS = 9047


class _Server:
    """A real HTTP server on 127.0.0.1 serving files from a folder, counting requests."""

    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        log = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:
                log.append(self.path)
                super().do_GET()

            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[_Server, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    server = _Server(root)
    yield server, root
    server.close()


@pytest.fixture
def empty_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the mirror and the cache at empty folders; return the cache folder."""
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    mirror.mkdir()
    cache.mkdir()
    monkeypatch.setenv(data.DATA_DIR_ENV, str(mirror))
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(cache))
    monkeypatch.delenv(data.OFFLINE_ENV, raising=False)
    return cache


def _dataset(url: str, content: bytes, algorithm: str = "sha256") -> data.Dataset:
    return data.Dataset(
        name="test-file",
        relpath="test/served.json.gz",
        urls=(url,),
        checksum=f"{algorithm}:{hashlib.new(algorithm, content).hexdigest()}",
        description="file served by the test",
        licence="CC0",
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- the mirror -------------------------------------------------------------------------------


def test_every_mirror_file_matches_its_pinned_checksum(use_mirror: Path) -> None:
    present = [d for d in data.list_datasets() if (use_mirror / d.relpath).is_file()]
    assert len(present) == 21  # every mirror file the registry needs beside the shipped data
    for dataset in present:
        assert data.availability(dataset) == data.Availability.MIRRORED
        assert data.dataset_path(dataset.name) == use_mirror / dataset.relpath


def test_shipped_files_match_their_pinned_checksums_and_have_a_notice() -> None:
    shipped = [d for d in data.list_datasets() if d.fetch is data.Fetch.SHIPPED]
    assert {d.name for d in shipped} == {
        "mp-elemental-refs-2023-02-07",
        "mp-formation-energies",
        "mp20-known-structures",
    }
    notice = (data.shipped_dir() / "NOTICE").read_text()
    total = 0
    for dataset in shipped:
        path = data.dataset_path(dataset.name)
        assert data.availability(dataset) == data.Availability.SHIPPED
        assert dataset.checksum == f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}"
        assert path.name in notice and "CC BY 4.0" in notice
        total += path.stat().st_size
    assert total < 15e6  # compact: about 6.5 MB today


def test_registry_names_public_sources() -> None:
    for dataset in data.list_datasets():
        assert dataset.urls and all(u.startswith("https://") for u in dataset.urls), dataset.name
    refs = data.get_dataset("mp-elemental-refs-2023-02-07")
    assert refs.urls == ("https://figshare.com/ndownloader/files/40387775",)
    assert refs.fetch is data.Fetch.SHIPPED
    mp20 = data.get_dataset("mp20")
    assert [u.rsplit("/", 1)[1] for u in mp20.urls] == ["train.csv", "val.csv", "test.csv"]
    assert data.get_dataset("mp-patched-phase-diagram-2023-02-07").checksum.startswith("md5:")


def test_shipped_elemental_refs_come_from_the_matbench_discovery_file(mirror_dir: Path) -> None:
    raw = mirror_dir / "hull" / "mp_elemental_reference_entries_2023-02-07.json.gz"
    # md5 pinned in Matbench Discovery's data-files.yml for this file (figshare 40387775)
    assert hashlib.md5(raw.read_bytes()).hexdigest() == "6e93b6f38d6e27d6c811d3cafb23a070"
    entries = json.loads(gzip.decompress(raw.read_bytes()))
    refs = data.load_elemental_references()
    for symbol, entry in entries.items():
        n_atoms = sum(entry["composition"].values())
        assert refs[symbol] == pytest.approx(entry["energy"] / n_atoms, abs=1e-8)


def test_unknown_dataset_lists_the_registered_names() -> None:
    with pytest.raises(DataError, match=r"Unknown dataset 'mp21'; registered datasets: .*mp20"):
        data.dataset_path("mp21")


def test_mirror_file_with_wrong_checksum_is_rejected(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    dataset = _dataset("https://example.org/served.json.gz", b"the pinned content")
    (tmp_path / "test").mkdir()
    (tmp_path / dataset.relpath).write_bytes(b"something else")
    with pytest.raises(DataError, match=r"has sha256 [0-9a-f]{64}, not the pinned"):
        data.resolve(dataset)


# --- parsed tables ------------------------------------------------------------------------------


def test_mp20_splits_and_columns(use_mirror: Path) -> None:
    test = data.load_mp20("test")
    assert tuple(test.columns) == data.MP20_COLUMNS
    assert len(test) == MP20_TEST_ROWS
    assert len(data.load_mp20("val")) == MP20_VAL_ROWS
    assert set(test["split"]) == {"test"}
    assert test["cif"].notna().all()
    agcl = test.set_index("material_id").loc["mp-22922"]
    assert agcl["reduced_formula"] == "AgCl"
    assert agcl["formation_energy_per_atom"] == pytest.approx(-0.733878, abs=1e-6)
    with pytest.raises(DataError, match="Unknown MP-20 split 'training'; allowed: train, val, test"):
        data.load_mp20("training")


def test_load_mp20_returns_a_copy(use_mirror: Path) -> None:
    first = data.load_mp20("test")
    first.loc[first.index[0], "reduced_formula"] = "changed"
    assert data.load_mp20("test")["reduced_formula"].iloc[0] != "changed"


def test_elemental_references_are_per_atom() -> None:
    refs = data.load_elemental_references()
    assert len(refs) == 89
    # O: mp-12957 (8-atom O2 cell) in the 2023-02-07 entries; totals divided by atoms
    assert refs["O"] == pytest.approx(-4.94668871125, abs=1e-9)
    assert refs["Na"] == pytest.approx(-1.3225252934482759, abs=1e-9)
    assert "Ra" not in refs


def test_formation_energies_table() -> None:
    table = data.load_formation_energies("mp20-subset")
    assert list(table.columns) == [
        "material_id",
        "formula",
        "formation_energy_per_atom",
        "e_above_hull_published",
    ]
    assert len(table) == 47649
    assert table["formation_energy_per_atom"].notna().all()
    with pytest.raises(DataError, match="Unknown hull reference 'mp21'; allowed: mp20-subset"):
        data.load_formation_energies("mp21")


def test_user_hull_entries_csv_keeps_sodium_nitride(tmp_path: Path) -> None:
    path = tmp_path / "hull.csv"
    path.write_text("formula,formation_energy_per_atom\nNaN,0.05\nNa3N,0.02\n")
    table = data.load_hull_entries(path)
    assert table["formula"].tolist() == ["NaN", "Na3N"]
    assert table["formation_energy_per_atom"].tolist() == [0.05, 0.02]


def test_user_hull_entries_json(tmp_path: Path) -> None:
    path = tmp_path / "hull.json"
    entries = [{"formula": "Li2O", "formation_energy_per_atom": -2.07, "material_id": "mine-1"}]
    path.write_text(json.dumps(entries))
    table = data.load_hull_entries(path)
    assert table.to_dict("records") == [
        {"material_id": "mine-1", "formula": "Li2O", "formation_energy_per_atom": -2.07}
    ]


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.csv", "formula,energy\nLi2O,-2\n", r"lack column\(s\) formation_energy_per_atom"),
        ("b.csv", "formula,formation_energy_per_atom\nLi2O,\n", "row 0 has formula 'Li2O'"),
        ("c.json", '{"formula": "Li2O"}', "must hold a JSON list of objects"),
        ("d.txt", "formula", r"must end in \.csv, \.csv\.gz, \.json or \.json\.gz"),
    ],
    ids=["missing-column", "missing-energy", "json-not-a-list", "bad-suffix"],
)
def test_bad_user_hull_entries(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        data.load_hull_entries(path)


def test_missing_user_hull_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist; give a CSV or JSON file path"):
        data.load_hull_entries(tmp_path / "nope.csv")


# --- missing data -------------------------------------------------------------------------------


def test_offline_and_missing_says_which_fetch_to_run(empty_dirs, monkeypatch) -> None:
    monkeypatch.setenv(data.OFFLINE_ENV, "1")
    assert data.availability(data.get_dataset("mp20")) == data.Availability.UNAVAILABLE
    with pytest.raises(DataError) as info:
        data.load_mp20()
    message = str(info.value)
    assert "'mp20'" in message and "MATSEARCH_OFFLINE=1" in message
    assert "run `matsearch data fetch mp20` on a connected machine" in message
    assert data.DATA_DIR_ENV in message
    assert message.count(". ") == 0  # one sentence
    assert data.load_elemental_references()["O"] < 0  # shipped data needs no mirror


def test_mirror_only_dataset_says_where_its_data_comes_from(empty_dirs) -> None:
    with pytest.raises(DataError) as info:
        data.dataset_path("mlearn-cu-test")
    message = str(info.value)
    assert "'mlearn-cu-test'" in message and "cannot be downloaded" in message
    assert "https://github.com/materialsvirtuallab/mlearn/tree/master/data/Cu" in message
    assert f"set {data.DATA_DIR_ENV} to a mirror that holds mlip/mlearn_Cu_test.json.gz" in message


def test_unreachable_url_is_a_data_error(empty_dirs) -> None:
    url = f"http://127.0.0.1:{_free_port()}/served.json.gz"
    with pytest.raises(DataError, match=r"'test-file' is not in .* downloading http://127\.0\.0"):
        data.resolve(_dataset(url, b"anything"))
    assert [p for p in empty_dirs.rglob("*") if p.is_file()] == []  # no partial file left


# --- downloads from a real HTTP server ----------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_download_verifies_and_caches(empty_dirs, served, algorithm: str) -> None:
    server, root = served
    content = gzip.compress(json.dumps({"O": -4.95}).encode(), mtime=0)
    (root / "refs.json.gz").write_bytes(content)
    dataset = _dataset(f"{server.url}/refs.json.gz", content, algorithm)

    path = data.resolve(dataset)
    assert path == empty_dirs / dataset.relpath
    assert path.read_bytes() == content
    assert data.resolve(dataset) == path  # second call: from the cache
    assert server.requests == ["/refs.json.gz"]


def test_corrupted_download_is_rejected(empty_dirs, served) -> None:
    server, root = served
    (root / "refs.json.gz").write_bytes(b"truncated or tampered bytes")
    dataset = _dataset(f"{server.url}/refs.json.gz", b"the bytes the registry pins")
    with pytest.raises(DataError, match=r"has sha256 [0-9a-f]{64}, not the pinned .* discarded"):
        data.resolve(dataset)
    assert [p for p in empty_dirs.rglob("*") if p.is_file()] == []  # no file, no .part


def test_http_404_is_a_data_error(empty_dirs, served) -> None:
    server, _ = served
    dataset = _dataset(f"{server.url}/missing.json.gz", b"x")
    with pytest.raises(DataError, match=r"downloading http://127\.0\.0\.1:\d+/missing\.json\.gz failed"):
        data.resolve(dataset)


def test_mp20_assembled_from_cdvae_split_csvs(empty_dirs, served, mirror_dir: Path) -> None:
    server, root = served
    for split in data.MP20_SPLITS:  # the pilot files are 1,000-row samples in CDVAE's columns
        csv = gzip.decompress((mirror_dir / f"mp20/mp20_pilot_{split}.csv.gz").read_bytes())
        (root / f"{split}.csv").write_bytes(csv)
    mp20 = replace(
        data.get_dataset("mp20"),
        urls=tuple(f"{server.url}/{split}.csv" for split in data.MP20_SPLITS),
        split_rows=(1000, 1000, 1000),
    )
    assert data.resolve(mp20) == empty_dirs / "mp20/mp20_structures.csv.gz"

    table = data.load_mp20()  # the mirror is empty, so this reads the assembled cache file
    assert tuple(table.columns) == data.MP20_COLUMNS
    assert table["split"].value_counts().to_dict() == {"train": 1000, "val": 1000, "test": 1000}
    row = table.set_index("material_id").loc["mp-1221227"]
    assert (row["split"], row["reduced_formula"]) == ("train", "Na3MnCoNiO6")
    assert row["e_above_hull_cdvae"] == pytest.approx(0.0430011104166663)


def test_cdvae_split_with_wrong_row_count_is_rejected(empty_dirs, served, mirror_dir) -> None:
    server, root = served
    for split in data.MP20_SPLITS:
        csv = gzip.decompress((mirror_dir / f"mp20/mp20_pilot_{split}.csv.gz").read_bytes())
        (root / f"{split}.csv").write_bytes(csv)
    mp20 = replace(
        data.get_dataset("mp20"),
        urls=tuple(f"{server.url}/{split}.csv" for split in data.MP20_SPLITS),
    )
    with pytest.raises(DataError, match="split 'train' .* has 1000 rows, not the 27138"):
        data.resolve(mp20)
    assert not (empty_dirs / "mp20/mp20_structures.csv.gz").exists()


def test_unwritable_cache_names_the_env_var(empty_dirs, monkeypatch) -> None:
    blocker = empty_dirs / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(blocker / "cache"))
    with pytest.raises(DataError, match="cannot be created .*set MATSEARCH_CACHE_DIR to a writable"):
        data.resolve(_dataset("http://127.0.0.1:9/x.json.gz", b"x"))

"""The data locator: order of places, SHA-256 verification, clear errors offline."""

import urllib.request

import pytest

from minigpt2 import datafiles
from minigpt2.data import gpt2_merges_path, load_text
from minigpt2.datafiles import DataFileError, locate

SHAKESPEARE = datafiles.KNOWN_FILES["tinyshakespeare"]
REAL_BYTES = {name: locate(name).read_bytes() for name in datafiles.KNOWN_FILES}  # before any test isolates itself


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No data dir, an empty cache, downloads off."""
    monkeypatch.delenv("MINIGPT2_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MINIGPT2_OFFLINE", "1")
    datafiles._verified.clear()
    return tmp_path


def real_copy(folder, name="tinyshakespeare"):
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / datafiles.KNOWN_FILES[name].filename
    target.write_bytes(REAL_BYTES[name])
    return target


def test_load_text_reads_tinyshakespeare():
    text = load_text("tinyshakespeare")
    assert len(text.encode("utf-8")) == 1_115_394
    assert text.startswith("First Citizen:")


def test_merges_path_is_verified():
    assert datafiles.sha256_of(gpt2_merges_path()) == datafiles.KNOWN_FILES["gpt2-merges"].sha256


def test_order_explicit_then_data_dir_then_cache(isolated, monkeypatch):
    source = real_copy(isolated / "source")
    cache = real_copy(isolated / "cache" / "minigpt2")
    data_dir = real_copy(isolated / "datadir")
    assert locate("tinyshakespeare") == cache
    monkeypatch.setenv("MINIGPT2_DATA_DIR", str(data_dir.parent))
    assert locate("tinyshakespeare") == data_dir
    assert locate("tinyshakespeare", path=source) == source


def test_offline_without_a_copy_names_the_variable_and_the_url(isolated):
    with pytest.raises(DataFileError) as err:
        load_text("tinyshakespeare")
    assert "MINIGPT2_DATA_DIR" in str(err.value)
    assert SHAKESPEARE.url in str(err.value)


def test_failed_download_names_the_variable_and_the_url(isolated, monkeypatch):
    monkeypatch.setenv("MINIGPT2_OFFLINE", "0")

    def no_network(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(DataFileError) as err:
        locate("tinyshakespeare")
    assert "MINIGPT2_DATA_DIR" in str(err.value) and SHAKESPEARE.url in str(err.value)


def test_download_is_verified_and_lands_in_the_cache(isolated, monkeypatch):
    monkeypatch.setenv("MINIGPT2_OFFLINE", "0")
    good = real_copy(isolated / "source").read_bytes()

    class FakeResponse:
        def __init__(self, data):
            self.data = data

        def read(self):
            return self.data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: FakeResponse(good[:-10] + b"corrupted!"))
    with pytest.raises(DataFileError, match="not the expected file"):
        locate("tinyshakespeare")
    assert not (isolated / "cache" / "minigpt2" / SHAKESPEARE.filename).exists()

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: FakeResponse(good))
    path = locate("tinyshakespeare")
    assert path == isolated / "cache" / "minigpt2" / SHAKESPEARE.filename


def test_truncated_file_is_an_error_never_used(isolated, monkeypatch):
    copy = real_copy(isolated / "datadir")
    copy.write_bytes(copy.read_bytes()[:1000])
    monkeypatch.setenv("MINIGPT2_DATA_DIR", str(copy.parent))
    with pytest.raises(DataFileError, match="truncated"):
        load_text("tinyshakespeare")


def test_corrupted_file_of_the_right_size_is_an_error(isolated, monkeypatch):
    copy = real_copy(isolated / "datadir")
    data = bytearray(copy.read_bytes())
    data[500] ^= 0xFF
    copy.write_bytes(bytes(data))
    monkeypatch.setenv("MINIGPT2_DATA_DIR", str(copy.parent))
    with pytest.raises(DataFileError, match="SHA-256"):
        load_text("tinyshakespeare")


def test_unknown_names_are_errors():
    with pytest.raises(DataFileError, match="tinyshakespeare"):
        load_text("war-and-peace")
    with pytest.raises(DataFileError, match="known"):
        locate("nope")


@pytest.mark.parametrize("kind", ["missing", "a file"])
def test_a_data_dir_that_is_not_a_folder_says_so(isolated, monkeypatch, kind):
    target = isolated / "no-such-folder"
    if kind == "a file":
        target.write_text("")
    real_copy(isolated / "cache" / "minigpt2")  # the cache holds a copy: it is not quietly used instead
    monkeypatch.setenv("MINIGPT2_DATA_DIR", str(target))
    with pytest.raises(DataFileError) as err:
        load_text("tinyshakespeare")
    expected = "does not exist" if kind == "missing" else "is a file, not a folder"
    assert f"MINIGPT2_DATA_DIR is set to {target}, which {expected}" in str(err.value)


@pytest.mark.parametrize("damage, detail", [("truncate", "rejected as truncated"), ("flip", "rejected as corrupted")])
def test_doctor_reports_a_rejected_file_as_rejected_not_as_missing(isolated, monkeypatch, damage, detail):
    from minigpt2.doctor import diagnose

    copy = real_copy(isolated / "datadir")
    data = bytearray(copy.read_bytes())
    if damage == "truncate":
        data = data[:1000]
    else:
        data[500] ^= 0xFF
    copy.write_bytes(bytes(data))
    monkeypatch.setenv("MINIGPT2_DATA_DIR", str(copy.parent))
    finding = next(f for f in diagnose() if f.what == SHAKESPEARE.filename)
    assert not finding.ok
    assert finding.detail == f"found at {copy} but {detail}"
    assert "not found" not in finding.detail and "Delete it" in finding.advice


def test_doctor_reports_a_data_dir_that_does_not_exist(isolated, monkeypatch):
    from minigpt2.doctor import diagnose

    monkeypatch.setenv("MINIGPT2_DATA_DIR", str(isolated / "typo"))
    finding = next(f for f in diagnose() if f.what == SHAKESPEARE.filename)
    assert not finding.ok and finding.detail == "MINIGPT2_DATA_DIR does not name a folder"
    assert "does not exist" in finding.advice

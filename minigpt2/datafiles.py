"""Finding the course's data files, and proving they are the right bytes.

A file is looked for in this order:

1. an explicit path, when the caller gives one;
2. the folder named by ``MINIGPT2_DATA_DIR``;
3. the user cache (``$XDG_CACHE_HOME/minigpt2``, else ``~/.cache/minigpt2``);
4. a download from the canonical source into the user cache
   (never when ``MINIGPT2_OFFLINE=1``).

Whatever is found is checked against its SHA-256: a truncated or corrupted file is
an error that says which file and what to do, never silently used. For a zip whose
own bytes can differ between mirrors (``member`` set), the size and SHA-256 are those
of the named file inside it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

DATA_DIR_ENV = "MINIGPT2_DATA_DIR"
OFFLINE_ENV = "MINIGPT2_OFFLINE"


@dataclass(frozen=True)
class DataFile:
    name: str
    filename: str
    size: int
    sha256: str
    url: str
    description: str
    member: str | None = None  # for a zip: the file inside it that size and sha256 describe


KNOWN_FILES: dict[str, DataFile] = {
    f.name: f
    for f in (
        DataFile(
            name="tinyshakespeare",
            filename="tinyshakespeare.txt",
            size=1_115_394,
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            description="40,000 lines of Shakespeare, the corpus the course trains on",
        ),
        DataFile(
            name="gpt2-merges",
            filename="gpt2.tiktoken",
            size=835_554,
            sha256="306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
            url="https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken",
            description="GPT-2's 50,256 BPE merge ranks, in tiktoken's format",
        ),
        DataFile(
            name="instruction-data",
            filename="instruction-data.json",
            size=203_524,
            sha256="7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
            url="https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/ch07/01_main-chapter-code/instruction-data.json",
            description="1,100 instruction / input / output records from rasbt/LLMs-from-scratch (lesson 11)",
        ),
        DataFile(
            name="sms-spam",
            filename="sms_spam_collection.zip",
            size=477_907,
            sha256="7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
            url="https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
            description="the SMS Spam Collection v.1, 5,574 labelled messages (Almeida & Gómez Hidalgo, "
                        "2011; lesson 11)",
            member="SMSSpamCollection",
        ),
    )
}


class DataFileError(RuntimeError):
    """A data file is missing, unreachable, or not the bytes it should be.

    ``rejected`` is the file that was found but refused ("truncated" or "corrupted" in
    ``problem``), or None when no file was found at all; ``problem`` is "data dir" when
    ``MINIGPT2_DATA_DIR`` names no folder.
    """

    def __init__(self, message: str, rejected: Path | None = None, problem: str = ""):
        super().__init__(message)
        self.rejected, self.problem = rejected, problem


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "minigpt2"


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to something other than "", 0, false or no."""
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def offline() -> bool:
    return env_flag(OFFLINE_ENV)


@contextmanager
def replacing(target: str | os.PathLike, prefix: str = ".", suffix: str = ".partial",
              durable: bool = False) -> Iterator[Path]:
    """The path to write ``target``'s new content to, renamed over ``target`` when the block ends.

    The path lies in a temporary folder beside ``target`` (named ``prefix…suffix``), so that a
    half-written file never takes ``target``'s place: an error in the block removes the folder and
    leaves ``target`` as it was, and ``os.replace`` is atomic on POSIX and Windows. ``durable``
    also flushes the file to disk before the rename and the rename itself after it (a checkpoint
    should survive a power cut).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=target.parent, prefix=prefix, suffix=suffix))
    try:
        written = work / target.name
        yield written
        if durable:
            with open(written, "rb") as f:
                os.fsync(f.fileno())  # the bytes are on disk before the name points at them
        os.replace(written, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if durable:
        _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_verified: dict[tuple[str, int, int], bool] = {}


def verify(path: Path, spec: DataFile) -> Path:
    """Return ``path`` if it holds exactly ``spec``'s bytes; raise a DataFileError otherwise."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _verified:
        return path
    size, actual = (stat.st_size, None) if spec.member is None else _member_size_and_sha256(path, spec)
    what = spec.filename if spec.member is None else f"{spec.member} inside {spec.filename}"
    if size != spec.size:
        raise DataFileError(
            f"{path}: {what} is {size:,} bytes but should be {spec.size:,} bytes: "
            f"it is truncated or not the right file. Delete it and put a fresh copy from {spec.url} there.",
            rejected=path, problem="truncated",
        )
    actual = actual or sha256_of(path)
    if actual != spec.sha256:
        raise DataFileError(
            f"{path}: {what} has SHA-256 {actual[:12]}…, not {spec.sha256[:12]}… as it should: "
            f"it is corrupted or not the right file. Delete it and put a fresh copy from {spec.url} there.",
            rejected=path, problem="corrupted",
        )
    _verified[key] = True
    return path


def configured_data_dir() -> Path | None:
    """The folder ``MINIGPT2_DATA_DIR`` names (None when unset); an error when it is not a folder,
    rather than quietly looking elsewhere."""
    value = os.environ.get(DATA_DIR_ENV, "")
    if not value:
        return None
    folder = Path(value).expanduser()
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DataFileError(
            f"{DATA_DIR_ENV} is set to {value}, which {what}. Point it at the folder that holds the course's data "
            f"files, or unset it to use {cache_dir()}",
            problem="data dir",
        )
    return folder


def _member_size_and_sha256(path: Path, spec: DataFile) -> tuple[int, str]:
    try:
        with zipfile.ZipFile(path) as archive:
            data = archive.read(spec.member)
    except (zipfile.BadZipFile, KeyError) as err:
        raise DataFileError(
            f"{path} should be a zip holding {spec.member} ({err}). Delete it and put a fresh copy from "
            f"{spec.url} there.",
            rejected=path, problem="corrupted",
        ) from None
    return len(data), hashlib.sha256(data).hexdigest()


def read_member(path: Path, spec: DataFile) -> bytes:
    """The bytes of ``spec.member`` in the (already verified) zip at ``path``."""
    with zipfile.ZipFile(path) as archive:
        return archive.read(spec.member)


def candidates(spec: DataFile) -> list[Path]:
    """Where ``spec`` is looked for, in order (the explicit path aside)."""
    places = []
    data_dir = configured_data_dir()
    if data_dir is not None:
        places.append(data_dir / spec.filename)
    places.append(cache_dir() / spec.filename)
    return places


def locate(name: str, path: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The verified local path of data file ``name`` (see the module docstring for the order)."""
    if name not in KNOWN_FILES:
        raise DataFileError(f"unknown data file {name!r}; known: {', '.join(sorted(KNOWN_FILES))}")
    spec = KNOWN_FILES[name]
    if path is not None:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            raise DataFileError(f"{explicit} does not exist (it was given as the path of {spec.filename}).")
        return verify(explicit, spec)
    for place in candidates(spec):
        if place.is_file():
            return verify(place, spec)
    if download and not offline():
        return _download(spec)
    raise DataFileError(
        f"{spec.filename} ({spec.description}) was not found, and "
        + ("downloads are off (MINIGPT2_OFFLINE=1)" if offline() else "downloading was not allowed")
        + f". Put a copy in a folder and point {DATA_DIR_ENV} at it, or in {cache_dir()}; "
        f"the file comes from {spec.url}"
    )


def _download(spec: DataFile) -> Path:
    target = cache_dir() / spec.filename
    try:
        with urllib.request.urlopen(spec.url, timeout=30) as response:
            data = response.read()
    except OSError as err:
        raise DataFileError(
            f"{spec.filename} was not found locally and could not be downloaded from {spec.url} ({err}). "
            f"Offline? Put a copy in a folder and set {DATA_DIR_ENV} to that folder."
        ) from err
    with replacing(target) as written:
        written.write_bytes(data)
        try:
            verify(written, spec)
        except DataFileError as err:
            raise DataFileError(f"the download from {spec.url} is not the expected file: {err}") from err
    return target

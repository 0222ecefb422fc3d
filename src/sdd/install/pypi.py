"""Finding and fetching files from PyPI, the one place besides npm that SDD downloads from.

Both frp and Node arrive as PyPI files (an sdist and a wheel), so we read PyPI's simple JSON index
(PEP 691): it names each file with its sha256, which lets us refuse a corrupted or tampered download
before a byte of it is unpacked. The legacy `/pypi/<name>/json` API is not used: it is not reachable
from every network this runs on, and mirrors rarely serve it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from sdd.install.errors import InstallError

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
DEFAULT_INDEX = "https://pypi.org/simple"
NETWORK_HINT = (
    "check that this machine can reach PyPI (or set SDD_PYPI_SIMPLE_URL to a PEP 691 mirror; "
    "HTTPS_PROXY is honoured)"
)


def index_url() -> str:
    """The simple index to read: `SDD_PYPI_SIMPLE_URL` for a mirror, else pypi.org."""
    return os.environ.get("SDD_PYPI_SIMPLE_URL", DEFAULT_INDEX).rstrip("/")


def make_client() -> httpx.Client:
    # A long read timeout: files.pythonhosted.org can stall for a while mid-stream and then recover.
    return httpx.Client(
        timeout=httpx.Timeout(30.0, read=120.0),
        follow_redirects=True,
        headers={"User-Agent": "sdd-runtime-installer"},
    )


@dataclass(frozen=True)
class DistributionFile:
    """One downloadable file of a PyPI project, with the hash the index vouches for."""

    filename: str
    url: str
    sha256: str
    size: int | None


class _IndexFile(BaseModel):
    filename: str
    url: str
    hashes: dict[str, str]
    size: int | None = None
    yanked: bool | str = False


class _IndexProject(BaseModel):
    files: list[_IndexFile]


def find_file(client: httpx.Client, project: str, wanted: Callable[[str], bool]) -> DistributionFile:
    """The first file of `project` whose name `wanted` accepts; raises InstallError when there is none."""
    url = f"{index_url()}/{project}/"
    try:
        response = client.get(url, headers={"Accept": SIMPLE_JSON})
        response.raise_for_status()
        index = _IndexProject.model_validate_json(response.content)
    except httpx.HTTPError as exc:
        raise InstallError(f"could not read the package index at {url}: {exc}", NETWORK_HINT) from exc
    except ValidationError as exc:
        raise InstallError(
            f"{url} did not answer with a PEP 691 JSON index",
            "point SDD_PYPI_SIMPLE_URL at an index that serves application/vnd.pypi.simple.v1+json",
        ) from exc
    for entry in index.files:
        if not wanted(entry.filename):
            continue
        digest = entry.hashes.get("sha256")
        if not digest:
            raise InstallError(f"the index lists {entry.filename} without a sha256, so it cannot be verified")
        return DistributionFile(
            filename=entry.filename,
            url=str(response.url.join(entry.url)),  # mirrors may give URLs relative to the index page
            sha256=digest.lower(),
            size=entry.size,
        )
    raise InstallError(
        f"the package index has no matching file for {project}",
        f"see {url}; a mirror may not carry this file",
    )


def download(client: httpx.Client, file: DistributionFile, dest: Path, console: Console) -> None:
    """Stream `file` to `dest` under a progress bar, and delete it again unless its sha256 matches."""
    hasher = hashlib.sha256()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # a bar redrawn into a log file is noise; the ✓ line suffices
    )
    try:
        with client.stream("GET", file.url) as response, progress:
            response.raise_for_status()
            total = file.size or int(response.headers.get("content-length", 0)) or None
            task = progress.add_task(f"downloading {file.filename}", total=total)
            with dest.open("wb") as out:
                for chunk in response.iter_bytes(1 << 16):
                    out.write(chunk)
                    hasher.update(chunk)
                    progress.advance(task, len(chunk))
    except httpx.HTTPError as exc:
        dest.unlink(missing_ok=True)
        raise InstallError(f"downloading {file.url} failed: {exc}", NETWORK_HINT) from exc
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    actual = hasher.hexdigest()
    if actual != file.sha256:
        dest.unlink(missing_ok=True)
        raise InstallError(
            f"{file.filename} failed verification: sha256 {actual}, but the index says {file.sha256}",
            "the download was corrupted or altered on the way; run the install again, and if it repeats, "
            "check for a proxy rewriting downloads",
        )
    console.print(f"  [green]✓[/] downloaded {file.filename} (sha256 verified)")

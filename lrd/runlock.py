"""Who runs what in a workspace: one `lrd matrix run` at a time (an flock on logs/matrix/runner.lock,
released by the kernel when its holder dies, however it dies), and one process per cell (its pid
file, logs/matrix/<cell>.pid, names the process and when it started).

A pid alone is not an identity: pids are reused, so a pid file left by a killed runner can name a
live, unrelated process (last round: "running in process 1", waited on forever). A pid file
written here holds `<pid> <start>` (the process's start time in clock ticks since boot, from
/proc/<pid>/stat), and counts only while that very process lives. An older runner wrote the pid
alone; such a file counts while its process is the cell's stage command (its command line ends
with the cell's dataset, model and seed), so cells started by an older runner are adopted, not
started twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator, Sequence

from lrd.errors import LRDError

LOCK_NAME = "runner.lock"


def start_time(pid: int) -> int | None:
    """Process `pid`'s start time (clock ticks since boot), None when it does not exist or /proc
    cannot say (not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # the command name (field 2) may hold spaces and parentheses: split after its last ')'
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def command_line(pid: int) -> list[str] | None:
    """Process `pid`'s arguments, None when it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _exists(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's: never one of our cells
        return False
    except OSError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Holder:
    """The process a pid file names: its pid and start time (None: an old-format file, pid alone)."""

    pid: int
    start: int | None = None

    @classmethod
    def me(cls, pid: int | None = None) -> "Holder":
        pid = pid or os.getpid()
        return cls(pid, start_time(pid))

    def text(self) -> str:
        return f"{self.pid} {self.start if self.start is not None else '-'}\n"

    @classmethod
    def parse(cls, text: str) -> "Holder | None":
        parts = text.split()
        try:
            pid = int(parts[0])
            start = int(parts[1]) if len(parts) > 1 and parts[1] != "-" else None
        except (ValueError, IndexError):
            return None
        return cls(pid, start)

    def alive(self, argv_tail: Sequence[str] = ()) -> bool:
        """Whether this very process still runs: same pid and same start time; for an old-format
        record (no start time), a live process whose command line ends with `argv_tail` (a cell's
        dataset, model, seed), so that a reused pid never passes."""
        if not _exists(self.pid):
            return False
        now = start_time(self.pid)
        if self.start is not None:
            return now is None or now == self.start  # no /proc: the pid is all there is to go on
        argv = command_line(self.pid)
        if argv is None:
            return now is None  # no /proc at all (not Linux): trust the pid, as before
        return bool(argv_tail) and argv[-len(argv_tail):] == list(argv_tail)


# --------------------------------------------------------------------------------------------
# one runner per workspace


@contextlib.contextmanager
def runner_lock(logs: Path) -> Iterator[None]:
    """Hold the workspace's runner lock while the block runs; LRDError naming the holder when
    another process holds it, or when a runner of older code (which took no lock) runs here."""
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            holder = Holder.parse(path.read_text(errors="replace")) if path.exists() else None
            raise LRDError(f"another runner holds {path}{_who(holder)}: one runner per workspace, so no cell runs twice. "
                           "Wait for it (`lrd matrix status` shows its cells), or stop it (Ctrl-C / kill PID) and run again") from None
        legacy = older_runners(logs.parent.parent)
        if legacy:
            raise LRDError(f"an `lrd matrix run` of older code runs in this workspace (process {', '.join(map(str, legacy))}) and "
                           "takes no lock: stop it first (`kill -9 PID` leaves its cells running; the next runner adopts them)")
        os.ftruncate(fd, 0)
        os.write(fd, f"{Holder.me().text().strip()} {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        yield
    finally:
        os.close(fd)  # closing the file releases the flock


def _who(holder: Holder | None) -> str:
    if holder is None:
        return ""
    argv = command_line(holder.pid)
    return f" (process {holder.pid}" + (f": {' '.join(argv)[:120]}" if argv else "") + ")"


def older_runners(root: Path, margin: float = 30.0) -> list[int]:
    """Processes other than this one running `lrd matrix run` in `root` that started more than
    `margin` seconds before this one (Linux; [] elsewhere): a runner of the code before the lock
    existed, which would start cells beside this one. (A runner started at the same moment is
    this code, about to find the lock taken: counting it would stop both.)"""
    mine, found = os.getpid(), []
    my_start = start_time(mine)
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    except OSError:
        return []
    here = root.resolve()
    for pid in pids:
        argv = command_line(pid)
        if pid == mine or not argv or "matrix" not in argv:
            continue
        rest = argv[argv.index("matrix") + 1:]
        if not rest or rest[0] != "run":
            continue
        started = start_time(pid)
        if my_start is not None and (started is None or started > my_start - margin * ticks):
            continue
        try:
            if Path(f"/proc/{pid}/cwd").resolve() == here:
                found.append(pid)
        except OSError:
            continue
    return found


# --------------------------------------------------------------------------------------------
# one process per cell


def read_claim(pid_file: Path) -> Holder | None:
    try:
        return Holder.parse(pid_file.read_text(errors="replace"))
    except OSError:
        return None


def claim_holder(pid_file: Path, argv_tail: Sequence[str]) -> Holder | None:
    """The live process that holds this cell (its pid file names it), else None (no file, or the
    file of a dead process or of an unrelated one that got its pid)."""
    holder = read_claim(pid_file)
    return holder if holder is not None and holder.alive(argv_tail) else None


def claim(pid_file: Path, argv_tail: Sequence[str]) -> Holder | None:
    """Claim a cell for this process: create its pid file, naming this process, unless a live
    process holds it (returned then). A stale file (dead or unrelated process) is replaced.
    O_EXCL makes the claim atomic: of two processes claiming at once, one wins."""
    for _ in range(3):
        try:
            fd = os.open(pid_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = claim_holder(pid_file, argv_tail)
            if holder is not None:
                return holder
            pid_file.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as out:
            out.write(Holder.me().text())
        return None
    raise LRDError(f"{pid_file}: cannot claim the cell (the file keeps coming back); is another runner starting it?")


def hand_over(pid_file: Path, pid: int) -> None:
    """Name the cell's own process (started by this claimant) in its pid file, replaced atomically."""
    tmp = pid_file.with_name(f".{pid_file.name}.tmp-{os.getpid()}")
    tmp.write_text(Holder.me(pid).text())
    os.replace(tmp, pid_file)

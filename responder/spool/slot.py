"""One spool folder, held by one process at a time (an exclusive `flock` on its `lock` file):
numbered segment files of JSON lines, appended and fsynced before a webhook is answered, and a
`replayed` file saying how far they have been stored in the database.

Order of durability: a record is answered only after its line is fsynced; the position moves
past a record only after the database committed it; a segment is deleted only after the
position has moved past it and was fsynced. A crash between a commit and the position's write
replays that record again: `Service.receive(..., replayed=True)` recognises it as the message
already stored (same phone, line, text and moment of receipt)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from responder.store.models import StoreUnavailable

SEGMENT_BYTES = 4 * 1024 * 1024  # a new segment after this much: replayed ones are deleted whole
READ_BYTES = 1024 * 1024  # read at a time when replaying (a webhook body is at most 64 KiB)
POSITION_FILE = "replayed"
LOCK_FILE = "lock"
SUFFIX = ".jsonl"


class SpoolUnavailable(StoreUnavailable):
    """The spool could not take a webhook either (full, or its disk failing): nothing was
    kept, so the webhook is answered 503 and the provider retries it."""


@dataclass
class Segment:
    number: int
    path: Path
    end: int  # bytes of complete, fsynced lines


@dataclass(frozen=True)
class Entry:
    """One record read back: its line, and where the next one starts."""

    segment: int
    end: int
    line: bytes


class SpoolSlot:
    """One folder of the spool, held through its lock by this process."""

    def __init__(self, folder: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.pending = 0  # records accepted (being written or written) and not yet replayed
        self.size = 0  # bytes in segment files
        self.written = asyncio.Event()  # set whenever appends finished (or failed)
        self._segments: list[Segment] = []
        self._active: Segment | None = None  # the one taking appends; None until the first
        self._position = (1, 0)  # (segment, offset): everything before it is replayed
        self._lock_fd: int | None = None
        self._position_fd: int | None = None
        self._append_fd: tuple[int, int] | None = None  # (segment number, fd)
        self._waiting: list[tuple[bytes, asyncio.Future[None]]] = []
        self._waiting_bytes = 0
        self._flusher: asyncio.Task[None] | None = None

    # -- holding the folder -----------------------------------------------------------------

    def try_lock(self) -> bool:
        """Takes the folder for this process; False when another process holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        self._lock_fd = fd
        return True

    def load(self) -> None:
        """Reads what a previous holder left: its segments, how far they were replayed; a
        line cut short by a crash while it was written (never answered) is dropped."""
        numbers = sorted(
            int(p.name.removesuffix(SUFFIX))
            for p in self.folder.iterdir()
            if p.name.endswith(SUFFIX) and p.name.removesuffix(SUFFIX).isdigit()
        )
        self._position_fd = os.open(self.folder / POSITION_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        position = _parse_position(os.pread(self._position_fd, 64, 0))
        first = numbers[0] if numbers else 1
        if position is None:
            position = (first, 0)
        elif position[0] not in numbers and position[1] > 0:
            position = (position[0] + 1, 0)  # that segment is gone: it was replayed to its end
        self._position = position
        self._segments = []
        for number in numbers:
            path = self._path(number)
            if number < self._position[0]:
                path.unlink()  # replayed before the last holder could delete it
                continue
            self._segments.append(Segment(number, path, _whole_lines(path)))
        self.size = sum(s.end for s in self._segments)
        self.pending = sum(self._count(s) for s in self._segments)
        self._advance()
        if self.pending:
            self.written.set()

    async def close(self) -> None:
        """Lets appends under way finish, then lets the folder go (the lock with it)."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        self.release()

    def release(self) -> None:
        """Closes the files (nothing may be being appended) and lets the lock go."""
        for fd in (self._position_fd, self._append_fd[1] if self._append_fd else None):
            if fd is not None:
                os.close(fd)
        self._position_fd = self._append_fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    # -- appending --------------------------------------------------------------------------

    async def append(self, line: bytes) -> None:
        """Writes one record and fsyncs it; the records of webhooks arriving meanwhile share
        one write and one fsync. Raises SpoolUnavailable when it could not be kept."""
        if self.size + self._waiting_bytes + len(line) > self.max_bytes:
            raise SpoolUnavailable(
                f"the spool {self.folder} is full ({self.max_bytes // (1024 * 1024)} MiB)"
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((line, future))
        self._waiting_bytes += len(line)
        self.pending += 1
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="spool-writer")
        await future

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            data = b"".join(line for line, _ in batch)
            self._waiting_bytes -= len(data)
            try:
                segment = self._writable()
                await asyncio.to_thread(self._write, segment, data)
            except OSError as err:
                self.pending -= len(batch)
                failure = SpoolUnavailable(f"the spool {self.folder} cannot be written: {err}")
                for _, future in batch:
                    if not future.done():  # a client that hung up no longer waits
                        future.set_exception(failure)
                self.written.set()  # fewer pending: a replayer waiting for them looks again
                continue
            segment.end += len(data)
            self.size += len(data)
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
            self.written.set()

    def _writable(self) -> Segment:
        """The segment to append to: a new one when there is none yet, when the last is big,
        or when it was replayed to its end (so that it can be deleted)."""
        active = self._active
        replayed = active is not None and self._position == (active.number, active.end)
        if active is None or active.end >= self.segment_bytes or replayed:
            number = max((s.number for s in self._segments), default=self._position[0] - 1) + 1
            number = max(number, self._position[0])
            active = Segment(number, self._path(number), 0)
            self._segments.append(active)
            self._active = active
            self._advance()
        return active

    def _write(self, segment: Segment, data: bytes) -> None:
        """Runs in a thread: appends `data` and fsyncs it, or leaves the file as it was."""
        if self._append_fd is None or self._append_fd[0] != segment.number:
            if self._append_fd is not None:
                os.close(self._append_fd[1])
                self._append_fd = None
            fd = os.open(segment.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._append_fd = (segment.number, fd)
            _fsync_folder(self.folder)  # the new file's name must survive a power cut too
        fd = self._append_fd[1]
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, segment.end)  # no half line for the next record to follow
            raise

    @property
    def appending(self) -> bool:
        """Records are being written: the replayer waits for them rather than finding none."""
        return bool(self._waiting) or (self._flusher is not None and not self._flusher.done())

    # -- replaying --------------------------------------------------------------------------

    def read(self, limit: int) -> list[Entry]:
        """Up to `limit` records from the replay position on, in the order they were written
        (only lines already fsynced)."""
        entries: list[Entry] = []
        number, offset = self._position
        for segment in self._segments:
            if segment.number < number:
                continue
            start = offset if segment.number == number else 0
            while start < segment.end and len(entries) < limit:
                with segment.path.open("rb") as file:
                    file.seek(start)
                    data = file.read(min(READ_BYTES, segment.end - start))
                if b"\n" not in data:  # no line end within READ_BYTES: damaged; hand it over
                    start += len(data)
                    entries.append(Entry(segment.number, start, data))
                    continue
                for line in data.split(b"\n")[:-1]:
                    start += len(line) + 1
                    entries.append(Entry(segment.number, start, line))
                    if len(entries) >= limit:
                        return entries
            if len(entries) >= limit:
                break
        return entries

    def done(self, entry: Entry) -> None:
        """Moves the position past `entry`: it is in the database. Written at once (a killed
        process keeps it), fsynced by `sync`."""
        self._position = (entry.segment, entry.end)
        self.pending = max(0, self.pending - 1)
        self._save_position()
        self._advance()

    def sync(self) -> None:
        if self._position_fd is not None:
            os.fsync(self._position_fd)

    def _advance(self) -> None:
        """Past the end of a finished segment that takes no more appends, the position moves to
        the next one, and the finished segments are deleted (after the position is durable):
        a spool replayed to its end holds no records on disk."""
        active = self._active
        if (
            active is not None
            and not self.appending
            and self._position == (active.number, active.end)
        ):
            self._active = None  # replayed to its end with nothing being appended: retire it
        finished: list[Segment] = []
        for segment in self._segments:
            number, offset = self._position
            if segment.number != number or segment is self._active or offset < segment.end:
                continue
            finished.append(segment)
            self._position = (number + 1, 0)
        if not finished:
            return
        self._save_position()
        self.sync()
        for segment in finished:
            self._segments.remove(segment)
            self.size -= segment.end
            with contextlib.suppress(FileNotFoundError):
                segment.path.unlink()

    def _save_position(self) -> None:
        if self._position_fd is not None:
            number, offset = self._position
            os.pwrite(self._position_fd, f"{number:010d} {offset:020d}\n".encode(), 0)

    # -- helpers ----------------------------------------------------------------------------

    def _path(self, number: int) -> Path:
        return self.folder / f"{number:010d}{SUFFIX}"

    def _count(self, segment: Segment) -> int:
        number, offset = self._position
        start = offset if segment.number == number else 0
        return sum(chunk.count(b"\n") for chunk in _chunks(segment.path, start, segment.end))


def _parse_position(data: bytes) -> tuple[int, int] | None:
    parts = data.split()
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def _whole_lines(path: Path) -> int:
    """The file's length up to its last line end; a cut-short last line is removed."""
    size = path.stat().st_size
    end = size
    while end > 0:
        with path.open("rb") as file:
            start = max(0, end - READ_BYTES)
            file.seek(start)
            found = file.read(end - start).rfind(b"\n")
        if found >= 0:
            end = start + found + 1
            break
        end = start
    if end != size:
        os.truncate(path, end)
    return end


def _chunks(path: Path, start: int, end: int) -> Iterator[bytes]:
    with path.open("rb") as file:
        file.seek(start)
        while start < end:
            data = file.read(min(READ_BYTES, end - start))
            if not data:
                return
            start += len(data)
            yield data


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

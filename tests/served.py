"""`responder serve` as a child process, like production runs it, its output kept in files."""

from __future__ import annotations

import os
import pty
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests import loopback

START_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServeProcess:
    """Starts `python -m responder serve` in `workdir` with `env` added to this process's
    environment; standard output and error go to files in `workdir`, or standard output to a
    pseudo-terminal when `terminal` (as when a person runs it); `prefix` goes before the
    command (e.g. setpriv, to run it as another user)."""

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        terminal: bool = False,
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stdout = workdir / "stdout"
        self.stderr = workdir / "stderr"
        self._screen = bytearray()
        self._reader: threading.Thread | None = None
        with self.stdout.open("wb") as out, self.stderr.open("wb") as err:
            screen, terminal_side = pty.openpty() if terminal else (-1, -1)
            self.process = subprocess.Popen(
                [*prefix, sys.executable, "-m", "responder", "serve", "--port", str(self.port)],
                cwd=workdir,
                env={**os.environ, **env},
                stdout=terminal_side if terminal else out,
                stderr=err,
            )
        if terminal:
            os.close(terminal_side)
            self._reader = threading.Thread(target=self._read_screen, args=(screen,), daemon=True)
            self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if loopback.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        self.process.kill()
        self.process.wait(timeout=10)
        raise RuntimeError(f"responder serve did not start:\n{self.output()}")

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode

    def _read_screen(self, screen: int) -> None:
        try:
            while chunk := os.read(screen, 4096):
                self._screen += chunk
        except OSError:  # EIO: the process closed its end
            pass
        finally:
            os.close(screen)

    def output(self) -> str:
        """Everything the process wrote, standard output then standard error."""
        if self._reader is not None:
            if self.process.poll() is not None:
                self._reader.join(timeout=10)  # the rest of the screen, once it has exited
            stdout = self._screen.decode(errors="replace").replace("\r\n", "\n")
        else:
            stdout = self.stdout.read_text(errors="replace")
        return stdout + self.stderr.read_text(errors="replace")

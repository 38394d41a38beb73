"""`flask` commands run as operators run them: each in a process of its own, with the test's
settings as its environment, its output read as it comes."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
# How long to wait for something a process does within a second or two; only a bound, so that a
# stuck process fails the test instead of hanging it.
PATIENCE = 60


class FlaskProcess:
    """`flask ARGV...` in a process of its own; `drop` names settings it must not see."""

    def __init__(self, settings: dict, *argv: str, drop: tuple[str, ...] = (), **extra: str):
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("SMH_", "FLASK_"))}
        environ |= {
            name: str(value)
            for name, value in settings.items()
            if name.isupper() and value is not None
        }
        environ |= {"FLASK_APP": "app", "PYTHONUNBUFFERED": "1", **extra}
        for name in ("TESTING", *drop):
            environ.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", *argv],
            cwd=PROJECT,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send the signal and wait for the process to end; return its exit code."""
        self.process.send_signal(signum)
        code = self.process.wait(timeout=PATIENCE)
        self.reader.join(timeout=PATIENCE)
        return code

    def kill(self) -> None:
        """End it as a crash would (SIGKILL), if it is still running, and let its output go."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=PATIENCE)
        if self.process.stdout:
            self.process.stdout.close()


def wait_until(condition, *processes: FlaskProcess) -> None:
    """Wait for the condition, failing if one of the processes ends first or time runs out."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        for running in processes:
            assert running.process.poll() is None, f"the process ended:\n{running.output}"
        assert time.monotonic() < deadline, "\n".join(p.output for p in processes)
        time.sleep(0.05)

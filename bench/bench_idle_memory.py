"""Memory of an idle ``pyrometer serve``: every process of the default layout, after start-up.

    python bench/bench_idle_memory.py                 # the default: 1 server + 2 scoring
    python bench/bench_idle_memory.py --workers 2     # any ``serve`` options after these

Starts ``pyrometer serve`` on a fresh SQLite file and a free port on 127.0.0.1, waits until
the port answers and a few seconds more, then prints each process's resident memory
(``VmRSS``), which of the heavy native libraries it has mapped (DuckDB, pyarrow, LightGBM,
SciPy, scikit-learn, pandas, NumPy) and the sum over the processes. Target: under 250 MB.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("duckdb", "pyarrow", "lightgbm", "scipy", "sklearn", "pandas", "numpy")
TARGET_MB = 250


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def children(pid: int) -> list[int]:
    """``pid`` and all its descendants, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(parents.get(current, []))
    return found


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def mapped_heavy(pid: int) -> list[str]:
    """The heavy libraries whose files the process has mapped (its imports, seen from outside)."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [name for name in HEAVY if f"/{name}/" in maps or f"/{name}." in maps]


def wait_for_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve ended with code {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"port {port} did not open in {seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait when up")
    args, serve_args = parser.parse_known_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        database = f"sqlite:///{Path(folder) / 'idle.db'}"
        script = Path(sys.executable).with_name("pyrometer")  # as a user starts it
        start = [str(script)] if script.exists() else [sys.executable, "-m", "pyrometer"]
        command = [*start, "serve", "--port", str(port)]
        proc = subprocess.Popen(
            [*command, "--database", database, *serve_args],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        try:
            wait_for_port(port, proc)
            time.sleep(args.settle)
            total = 0.0
            for pid in children(proc.pid):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                role = "server" if pid == proc.pid else "child"
                if "multiprocessing" in cmdline:
                    role = "scoring" if "spawn_main" in cmdline else "helper"
                mb = rss_mb(pid)
                total += mb
                heavy = ", ".join(mapped_heavy(pid)) or "none"
                print(f"pid {pid:>7} {role:>8} {mb:8.1f} MB   heavy libraries mapped: {heavy}")
            verdict = "ok" if total < TARGET_MB else "MISSED"
            print(f"total {total:.1f} MB over the processes (target < {TARGET_MB} MB: {verdict})")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()

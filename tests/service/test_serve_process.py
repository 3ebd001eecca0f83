"""``pyrometer serve`` as a process: it announces its address only once it answers, a
port in use is one clear error before anything starts, ``--demo`` keeps its files in a
data folder and its keys across restarts, and ``--workers N`` leaves nothing behind
when its supervisor is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **extra}
    for name in ("PYROMETER_DATABASE_URL", "PYROMETER_DATA_DIR", "PYROMETER_DOCS"):
        if name not in extra:
            env.pop(name, None)
    return env


def _serve(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pyrometer.cli.app", "serve", "--scoring-processes", "0", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _lines_until_announced(process: subprocess.Popen[str]) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    while not lines or not lines[-1].startswith("Pyrometer on "):
        line = process.stdout.readline()
        assert line, f"serve ended: {process.stderr.read() if process.stderr else ''}"
        lines.append(line.strip())
    return lines


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.parametrize("docs", [True, False])
def test_the_address_is_announced_once_it_answers(tmp_path: Path, docs: bool) -> None:
    port = free_port()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    args = ["--port", str(port), "--database", url] + ([] if docs else ["--no-docs"])
    process = _serve(args, tmp_path, _env())
    try:
        lines = _lines_until_announced(process)
        where = f"Pyrometer on http://127.0.0.1:{port}"
        assert lines[-1] == (f"{where} (API docs at /docs)" if docs else where)
        # No retry: whoever reads the line can connect at once.
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        page = httpx.get(f"http://127.0.0.1:{port}/docs", timeout=5)
        assert page.status_code == (200 if docs else 404)
    finally:
        _stop(process)


def test_a_port_in_use_is_one_clear_error_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "pyrometer.cli.app", "serve", "--port", str(port), "--demo"],
            cwd=tmp_path,
            env=_env(PYROMETER_DATA_DIR=str(tmp_path / "data")),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and "in use" in lines[0], result.stderr
    assert not (tmp_path / "data").exists()  # nothing started: no store, no demo
    assert list(tmp_path.iterdir()) == []


def test_demo_keeps_its_files_in_the_data_dir_and_its_keys(tmp_path: Path) -> None:
    here = tmp_path / "here"
    here.mkdir()
    folder = tmp_path / "data"
    runs = []
    for args, env in (
        (["--data-dir", str(folder)], _env()),
        ([], _env(PYROMETER_DATA_DIR=str(folder))),  # the variable names the same folder
    ):
        port = free_port()
        process = _serve(["--demo", "--demo-leads", "12", "--port", str(port), *args], here, env)
        try:
            lines = _lines_until_announced(process)
            keys = dict(line.split(" key: ") for line in lines if " key: " in line)
            listed = httpx.get(
                f"http://127.0.0.1:{port}/v1/leads",
                params={"limit": 100},
                headers={"Authorization": f"Bearer {keys['admin']}"},
                timeout=10,
            )
            assert listed.status_code == 200
            runs.append((keys, len(listed.json()["items"])))
        finally:
            _stop(process)
    assert runs[0] == runs[1]  # the same keys, and the demo was not loaded twice
    assert runs[0][1] == 12 and set(runs[0][0]) == {"admin", "ingest"}
    assert list(here.iterdir()) == []  # nothing in the current directory
    assert (folder / "demo.db").exists()
    assert (folder / "demo-keys.json").stat().st_mode & 0o777 == 0o600


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie holds no port and runs nothing


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
    return True


def test_workers_end_with_a_killed_supervisor(tmp_path: Path) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    port = free_port()
    url = f"sqlite:///{tmp_path / 'store.db'}"
    args = ["--port", str(port), "--database", url, "--workers", "2"]
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "pyrometer.cli.app", "serve", "--scoring-processes", "1", *args],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    children: set[int] = set()
    try:
        _lines_until_announced(supervisor)
        deadline = time.monotonic() + 60
        children = _descendants(supervisor.pid)
        while len(children) < 4 and time.monotonic() < deadline:  # 2 workers, 2 scorers
            time.sleep(0.2)
            children = _descendants(supervisor.pid)
        assert len(children) >= 4, children
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not any(_alive(pid) for pid in children) and _port_free(port):
                break
            time.sleep(0.2)
        assert not [pid for pid in children if _alive(pid)], "children outlived the supervisor"
        assert _port_free(port)
    finally:  # whatever the outcome, leave no process of this test behind
        if supervisor.poll() is None:
            children |= _descendants(supervisor.pid)
            supervisor.kill()
            supervisor.wait()
        for pid in children:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    restarted = _serve(["--port", str(port), "--database", url], tmp_path, _env())
    try:
        _lines_until_announced(restarted)
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    finally:
        _stop(restarted)

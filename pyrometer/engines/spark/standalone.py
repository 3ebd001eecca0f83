"""A Spark standalone cluster on this machine, from the PySpark package's own scripts.

For tests and benchmarks, and to try a ``spark://`` master without a cluster: a master
and workers as child processes on 127.0.0.1, stopped together. (The pip package has no
``sbin/start-master.sh``; ``bin/spark-class`` runs the same classes.)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def free_ports(n: int) -> list[int]:
    """``n`` ports free on 127.0.0.1 now, all different: each socket is held until all
    are bound, so two of them can never be the same port (a worker's web UI on the port
    meant for the master's answered the master's ``/json/`` with a worker's page)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Standalone:
    """A running master and its workers; ``url`` is the ``spark://`` master URL."""

    url: str
    web: str
    folder: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def start(
        cls, workers: int = 2, cores: int = 1, memory: str = "1g", timeout: float = 90.0
    ) -> Standalone:
        """Start a master and ``workers`` workers; return once all are ALIVE."""
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise RuntimeError(
                "Spark needs a Java runtime: apt-get install openjdk-17-jre-headless"
            )
        folder = Path(tempfile.mkdtemp(prefix="pyrometer-spark-cluster-"))
        env = {
            **os.environ,
            "SPARK_HOME": str(spark_home()),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOG_DIR": str(folder / "logs"),
            "SPARK_WORKER_DIR": str(folder / "work"),
            "SPARK_LOCAL_DIRS": str(folder / "local"),
            "SPARK_PID_DIR": str(folder),
        }
        port, web, *worker_webs = free_ports(2 + workers)
        cluster = cls(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{web}", folder)
        script = str(spark_home() / "bin" / "spark-class")

        def launch(name: str, *args: str) -> None:
            log = (folder / f"{name}.log").open("wb")
            cluster.processes.append(
                subprocess.Popen(
                    [script, *args], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder
                )
            )

        try:
            launch(
                "master", MASTER, "--host", "127.0.0.1", "--port", str(port),
                "--webui-port", str(web),
            )  # fmt: skip
            for i in range(workers):
                launch(
                    f"worker{i}", WORKER, cluster.url, "--host", "127.0.0.1",
                    "--cores", str(cores), "--memory", memory,
                    "--webui-port", str(worker_webs[i]), "--work-dir", str(folder / f"work{i}"),
                )  # fmt: skip
            cluster._wait(workers, timeout)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def alive_workers(self) -> int:
        try:
            with urllib.request.urlopen(self.web + "/json/", timeout=2) as response:
                state = json.load(response)
        except (OSError, ValueError):  # not up yet, or not the master's page
            return 0
        return sum(1 for worker in state.get("workers", []) if worker.get("state") == "ALIVE")

    def _wait(self, workers: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.processes:
                if proc.poll() is not None:
                    raise RuntimeError(f"a Spark process exited; see the logs in {self.folder}")
            if self.alive_workers() >= workers:
                return
            self._follow_web_ui()
            time.sleep(0.3)
        raise TimeoutError(f"Spark workers not ALIVE after {timeout:.0f} s; logs: {self.folder}")

    def _follow_web_ui(self) -> None:
        """The master's web UI where its log says it bound it: another process can take
        the port chosen for it first, and the master then takes the next one."""
        try:
            text = (self.folder / "master.log").read_text(errors="replace")
        except OSError:
            return
        found = re.search(r"MasterWebUI.*started at http://[^\s/:]+:(\d+)", text)
        if found:  # it names the host "localhost": the address it bound stays ours
            self.web = f"http://127.0.0.1:{found.group(1)}"

    def stop(self) -> None:
        """Stop every process started here (by its own id), then remove the folder."""
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

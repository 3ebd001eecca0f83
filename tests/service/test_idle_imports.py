"""An idle service holds no library it does not use (issue #10: 760 MB idle before).

``pyrometer serve`` runs a server process and scoring processes started with ``spawn``,
which import the command line again; neither may load DuckDB, pyarrow, LightGBM, SciPy or
the other predictive libraries, which ingest and reads never use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("duckdb", "pyarrow", "lightgbm", "scipy", "sklearn", "pandas")

# The serve path as the console script runs it: the command line is imported (also by
# each spawned scoring process, as ``__mp_main__``), then the app starts its scoring pool.
PROBE = """
import json
import sys

from pyrometer.cli.app import main  # noqa: F401  (what the `pyrometer` script imports)

HEAVY = {heavy!r}
LOADED = "sorted(m for m in {heavy!r} if m in __import__('sys').modules)"

if __name__ == "__main__":
    from fastapi.testclient import TestClient

    from pyrometer.api.app import create_app
    from pyrometer.service.runtime import Service

    service = Service.open(sys.argv[1])
    with TestClient(create_app(service, scoring_processes=1)) as client:
        client.get("/v1/leads")  # a request through the app: 401 without a key
        scoring = service.scoring_pool._executors[0].submit(eval, LOADED).result(timeout=60)
        server = sorted(m for m in HEAVY if m in sys.modules)
    print(json.dumps({{"server": server, "scoring": scoring}}))
"""


def test_server_and_scoring_processes_import_no_heavy_library(
    tmp_path: Path, store_url: str
) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE.format(heavy=HEAVY))
    done = subprocess.run(
        [sys.executable, str(probe), store_url],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == {"server": [], "scoring": []}

"""The standalone cluster's ports: all different when chosen together, and the master's
web UI followed to where its log says it went (another process may take a port first)."""

from __future__ import annotations

from pathlib import Path

from pyrometer.engines.spark.standalone import Standalone, free_ports


def test_ports_chosen_together_are_all_different() -> None:
    for _ in range(20):
        ports = free_ports(6)
        assert len(set(ports)) == 6


def test_the_web_ui_is_followed_to_the_port_the_master_bound(tmp_path: Path) -> None:
    cluster = Standalone("spark://127.0.0.1:7077", "http://127.0.0.1:8080", tmp_path)
    cluster._follow_web_ui()  # no log yet: as chosen
    assert cluster.web == "http://127.0.0.1:8080"
    (tmp_path / "master.log").write_text(
        "26/12/01 17:22:56 WARN Utils: Service 'MasterUI' could not bind on port 8080.\n"
        "26/12/01 17:22:56 INFO MasterWebUI: Bound MasterWebUI to 127.0.0.1, and started at "
        "http://localhost:8081\n"
    )
    cluster._follow_web_ui()
    assert cluster.web == "http://127.0.0.1:8081"

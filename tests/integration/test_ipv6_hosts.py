"""An IPv6 host written as in a URL (`[::1]`, as the README writes the loopback name) for the
dashboard and a plant's emulated endpoint: `--check-config` accepted it, then the program failed to
bind it (`Name or service not known`, exit 1). The loader now keeps the bare address, which binds,
and URLs put it back in brackets. Nothing is contacted: the test only binds (and frees) the ports."""
from __future__ import annotations

import yaml

from core.config import load_config
from hil_scheduler import HilApp, Options
from tests.helpers import SHIPPED_CONFIG, free_port


def test_a_bracketed_ipv6_host_binds_and_is_written_back_in_brackets_in_urls(tmp_path):
    doc = yaml.safe_load(SHIPPED_CONFIG.read_text())
    dash_port, lib_port = free_port(), free_port()
    doc["dashboard"].update(host="[::1]", port=dash_port)
    doc["general"]["log_dir"] = str(tmp_path / "logs")
    doc.setdefault("recording", {})["data_dir"] = str(tmp_path / "data")
    for pid, port in (("lib", lib_port), ("vrfb", free_port())):
        doc["plants"][pid]["modbus"]["local"].update(host="[::1]" if pid == "lib" else "127.0.0.1", port=port)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    cfg = load_config(path)
    assert (cfg.dashboard.host, cfg.plants["lib"].local.host) == ("::1", "::1")
    (tmp_path / "data").mkdir()
    app = HilApp(cfg, options=Options(dashboard=True))
    try:
        app.start()   # before: DashboardStartError `Dashboard cannot listen on [::1]:…: Name or service not known`
        assert app.dashboard.url == f"http://[::1]:{dash_port}"
    finally:
        app.shutdown("test")

"""The start path stays lean (issue 13): until the Modbus servers and the dashboard listen, the
director imports neither numpy, pandas, requests nor prometheus_client (together about 1 s).

A fresh interpreter does what `hil_scheduler.main` does before the listeners: import the director,
load the shipped config, build `shared_data` without frames, build the `HilApp` and the Dash app,
and answer Dash's first request (`GET /`, whose layout check runs before the app has started).
No port is opened. The test fails naming the heavy modules that got imported.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "pandas", "requests", "prometheus_client")

SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1])
from agents.process_tuning import tune_process
tune_process()
import hil_scheduler as H
from agents.shared_data import build_shared_data
from core.config import load_config
from dashboard.app import create_dash_app
cfg = load_config(sys.argv[2])
app = H.HilApp(cfg, options=H.Options(), shared_data=build_shared_data(frames=False))
status = create_dash_app(app).server.test_client().get("/").status_code
print(json.dumps({"status": status, "heavy": [m for m in json.loads(sys.argv[3]) if m in sys.modules]}))
"""


def test_nothing_heavy_is_imported_before_the_listeners(tmp_path):
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT), str(ROOT / "config.yaml"), json.dumps(HEAVY)],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["status"] == 200
    assert result["heavy"] == [], f"imported on the start path: {result['heavy']}"

"""deploy/cluster: the systemd unit template passes `systemd-analyze verify`
(and a broken copy does not), and the launcher script parses and explains
itself. Their behaviour is tested with real processes in
tests/kafka/test_cluster.py."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy/cluster/shopflow@.service"
LAUNCH = ROOT / "deploy/cluster/launch.sh"


def verify(unit_text, tmp_path):
    """`systemd-analyze verify` of the unit as instance 0, with ExecStart
    pointing at an executable that exists here; returns its findings."""
    unit = tmp_path / "shopflow@0.service"
    unit.write_text(unit_text.replace("/usr/local/bin/shopflow", sys.executable))
    proc = subprocess.run([shutil.which("systemd-analyze"), "verify", "--man=no", unit],
                          capture_output=True, text=True, timeout=60)
    return (proc.stdout + proc.stderr).strip()


def test_the_unit_template_verifies(tmp_path):
    assert verify(UNIT.read_text(), tmp_path) == ""


def test_a_broken_unit_is_caught(tmp_path):
    broken = UNIT.read_text().replace("Restart=on-failure", "Restrat=on-failure")
    assert "Restrat" in verify(broken, tmp_path)


def test_the_unit_runs_the_supervisor_with_the_instance_as_index():
    text = UNIT.read_text()
    start = next(l for l in text.splitlines() if l.startswith("ExecStart="))
    assert "supervise" in start and "--process %i" in start and "-- run --config" in start
    assert "KillMode=control-group" in text and "TimeoutStopSec=" in text


def test_the_launcher_parses_and_explains_itself():
    assert subprocess.run(["bash", "-n", LAUNCH]).returncode == 0
    out = subprocess.run([LAUNCH, "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "launch.sh [-n PROCESSES]" in out.stdout
    bad = subprocess.run([LAUNCH, "-x"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "unknown option -x" in bad.stderr

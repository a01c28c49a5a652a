"""A real Prometheus and Alertmanager (Debian's packages) for the live alert
test, each on its own free loopback port and storage dir, plus the webhook
receiver Alertmanager notifies."""

import json
import shutil
import socket
import subprocess
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

from kafka_util import wait_for
from promfiles import ALERTMANAGER_YML, PROMETHEUS_YML, scaled_rules

# The live test divides every window and `for:` of the shipped rules by this,
# and scrapes and evaluates every second instead of every 15.
TIME_SCALE = 30


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(tool):
    path = shutil.which(tool)
    assert path, f"{tool} not found: run scripts/monitoring-setup.sh (make setup) to install it"
    return path


class Daemon:
    """A background process whose output goes to a log file; stopped with TERM, then KILL."""

    def __init__(self, name, cmd, log, env=None):
        self.name, self.log = name, log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)

    def check_alive(self):
        assert self.proc.poll() is None, \
            f"{self.name} exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def ready(daemon, port):
    """Waits for /-/ready of a Prometheus or Alertmanager."""
    def answered():
        daemon.check_alive()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as r:
            return r.status == 200
    wait_for(answered, f"{daemon.name} ready on 127.0.0.1:{port}", timeout=60)


def prometheus(work, shopflow_port, alertmanager_port):
    """Starts Prometheus on the shipped prometheus.yml with shopflow's target,
    the time-scaled rules and this Alertmanager; returns (daemon, port)."""
    port = free_port()
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(p) for p in scaled_rules(work / "rules", TIME_SCALE)]
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = \
        [f"127.0.0.1:{alertmanager_port}"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs["shopflow"]["static_configs"][0]["targets"] = [f"127.0.0.1:{shopflow_port}"]
    jobs["prometheus"]["static_configs"][0]["targets"] = [f"127.0.0.1:{port}"]
    jobs["alertmanager"]["static_configs"][0]["targets"] = [f"127.0.0.1:{alertmanager_port}"]
    path = work / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    daemon = Daemon("prometheus", [need("prometheus"), f"--config.file={path}",
                                   f"--storage.tsdb.path={work / 'prometheus-data'}",
                                   f"--web.listen-address=127.0.0.1:{port}"],
                    work / "prometheus.log")
    ready(daemon, port)
    return daemon, port


def alertmanager(work, webhook_port):
    """Starts Alertmanager on the shipped alertmanager.yml with its receivers
    pointed at the test's webhook (same paths) and its waits shortened;
    clustering off, so it opens no port beyond its own. Returns (daemon, port)."""
    port = free_port()
    config = yaml.safe_load(ALERTMANAGER_YML.read_text())
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    for receiver in config["receivers"]:
        for hook in receiver["webhook_configs"]:
            path = urllib.parse.urlsplit(hook["url"]).path
            hook["url"] = f"http://127.0.0.1:{webhook_port}{path}"
    path = work / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    daemon = Daemon("alertmanager", [need("prometheus-alertmanager"), f"--config.file={path}",
                                     f"--storage.path={work / 'alertmanager-data'}",
                                     f"--web.listen-address=127.0.0.1:{port}",
                                     "--cluster.listen-address="],
                    work / "alertmanager.log")
    ready(daemon, port)
    return daemon, port


class Webhook:
    """Receives Alertmanager's webhook POSTs; keeps (path, body) of each."""

    def __init__(self):
        self.received, lock = [], threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    received.append((self.path, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args):
                pass

        self.lock = lock
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def notifications(self, alertname, status):
        """[(path, alert)] of every notified alert with this name and status."""
        with self.lock:
            return [(path, a) for path, body in self.received for a in body["alerts"]
                    if a["labels"]["alertname"] == alertname and a["status"] == status]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def query(port, expr):
    """An instant query; returns [(labels, float value)]."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    answer = get_json(url)
    assert answer["status"] == "success", answer
    return [(r["metric"], float(r["value"][1])) for r in answer["data"]["result"]]


def alert_state(port, alertname):
    """The state of an alert in Prometheus (inactive, pending, firing) across its series."""
    states = {a["state"] for a in get_json(f"http://127.0.0.1:{port}/api/v1/alerts")["data"]["alerts"]
              if a["labels"]["alertname"] == alertname}
    return "firing" if "firing" in states else "pending" if states else "inactive"


def alertmanager_alerts(port, alertname):
    """The alerts of that name Alertmanager holds, with their status (active, suppressed)."""
    return [a for a in get_json(f"http://127.0.0.1:{port}/api/v2/alerts")
            if a["labels"]["alertname"] == alertname]

"""What the schemas of the ops files cannot see: names and numbers that must
agree between files (the StatefulSet and its Services, the hostfile and the
replicas, the compose processes and their hostfile), the probes and the drain,
and that every setting they pass to shopflow is one shopflow knows: an unknown
key or SHOPFLOW_* variable stops `shopflow run` at start-up."""

import re
import tomllib

from opsfiles import (COMPOSE_DIR, DOCKERFILE, METRICS_PORT, TIMELY_PORT, compose,
                      compose_env, containers, documented_keys, documented_vars, k8s, k8s_objects, runs_pipeline,
                      toml_keys)


def statefulset():
    return k8s("StatefulSet")


def pod_spec():
    return statefulset()["spec"]["template"]["spec"]


def main_container():
    (container,) = pod_spec()["containers"]
    return container


def k8s_config():
    return tomllib.loads(k8s("ConfigMap")["data"]["shopflow.toml"])


def port_number(container, port):
    """A probe's or Service's port, by number or by the container port's name."""
    return next((p["containerPort"] for p in container["ports"] if p["name"] == port), port)


def headless_service():
    return k8s("Service", statefulset()["spec"]["serviceName"])


def test_statefulset_names_a_headless_service_that_selects_its_pods():
    service, sts = headless_service(), statefulset()
    assert service["spec"]["clusterIP"] == "None"
    # Peers resolve each other before any of them can be Ready.
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    assert {p["port"] for p in service["spec"]["ports"]} >= {TIMELY_PORT, METRICS_PORT}
    # Processes wait for each other: one-by-one start-up would never finish.
    assert sts["spec"]["podManagementPolicy"] == "Parallel"


def test_hostfile_lists_every_pod_in_ordinal_order():
    sts, config = statefulset(), k8s_config()
    name, namespace = sts["metadata"]["name"], sts["metadata"]["namespace"]
    service = sts["spec"]["serviceName"]
    replicas = sts["spec"]["replicas"]
    expected = [f"{name}-{i}.{service}.{namespace}.svc.cluster.local:{TIMELY_PORT}" for i in range(replicas)]
    assert k8s("ConfigMap")["data"]["hostfile"].splitlines() == expected
    assert config["cluster"]["processes"] == replicas
    # cluster.hostfile is the ConfigMap's key where the pod mounts the ConfigMap.
    volume = next(v["name"] for v in pod_spec()["volumes"] if v.get("configMap", {}).get("name") == "shopflow")
    mount = next(m["mountPath"] for m in main_container()["volumeMounts"] if m["name"] == volume)
    assert config["cluster"]["hostfile"] == f"{mount}/hostfile"


def test_process_index_is_the_pod_ordinal():
    env = {e["name"]: e for e in main_container()["env"]}
    source = env["SHOPFLOW_CLUSTER_PROCESS"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert source == "metadata.labels['apps.kubernetes.io/pod-index']"
    assert "process" not in k8s_config()["cluster"], "one index for all pods would make every pod process N"


def test_probes_ask_healthz_on_the_metrics_port():
    container, config = main_container(), k8s_config()
    assert config["metrics"]["listen"] == f"0.0.0.0:{METRICS_PORT}"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz", probe
        assert port_number(container, get["port"]) == METRICS_PORT, probe


def test_prometheus_scrapes_the_metrics_port():
    annotations = statefulset()["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_grace_periods_cover_the_drain():
    # SIGTERM finishes the transaction and commits offsets: allow about 60 s.
    assert pod_spec()["terminationGracePeriodSeconds"] >= 60
    for name, service in compose()["services"].items():
        if runs_pipeline(service):
            grace = re.fullmatch(r"(\d+)s", service["stop_grace_period"])
            assert grace and int(grace[1]) >= 60, name


def test_every_container_has_requests_and_limits():
    for container in pod_spec()["containers"]:
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) >= {"cpu", "memory"}, (container["name"], kind)


def test_no_service_links_to_turn_into_shopflow_variables():
    # A Service named shopflow-dashboard would become SHOPFLOW_DASHBOARD_SERVICE_HOST
    # and friends in every pod, and shopflow refuses unknown SHOPFLOW_* variables.
    assert pod_spec()["enableServiceLinks"] is False


def test_pdb_and_dashboard_service_select_the_statefulsets_pods():
    sts = statefulset()
    labels = sts["spec"]["template"]["metadata"]["labels"]
    pdb = k8s("PodDisruptionBudget")
    assert pdb["metadata"]["namespace"] == sts["metadata"]["namespace"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    dashboard = k8s("Service", "shopflow-dashboard")["spec"]
    # Only process 0 serves the dashboard.
    assert dashboard["selector"]["statefulset.kubernetes.io/pod-name"] == f"{sts['metadata']['name']}-0"
    assert port_number(main_container(), dashboard["ports"][0]["targetPort"]) == 8080


def test_secret_and_configmap_references_exist():
    secret, configmap = k8s("Secret"), k8s("ConfigMap")
    for container in containers(pod_spec()):
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == secret["metadata"]["name"], env["name"]
                assert ref["key"] in secret["stringData"], env["name"]
    assert {v["configMap"]["name"] for v in pod_spec()["volumes"] if "configMap" in v} == {configmap["metadata"]["name"]}
    namespaces = {o["metadata"].get("namespace") for _, o in k8s_objects() if o["kind"] != "Namespace"}
    assert namespaces == {k8s("Namespace")["metadata"]["name"]}


def compose_processes():
    """The compose services that run shopflow, by process index."""
    services = compose()["services"]
    found = {int(compose_env(s)["SHOPFLOW_CLUSTER_PROCESS"]): (name, s)
             for name, s in services.items() if runs_pipeline(s)}
    assert sorted(found) == list(range(len(found))), f"process indices {sorted(found)}"
    return [found[i] for i in sorted(found)]


def test_compose_processes_share_one_hostfile_in_process_order():
    config = tomllib.loads((COMPOSE_DIR / "shopflow.toml").read_text())
    processes = compose_processes()
    assert len(processes) == config["cluster"]["processes"] == 2
    for _, service in processes:
        mounts = {c["target"]: c["source"] for c in service["configs"]}
        assert mounts[config["cluster"]["hostfile"]] == "hostfile"
    hostfile = COMPOSE_DIR / compose()["configs"]["hostfile"]["file"]
    assert hostfile.read_text().splitlines() == [f"{name}:{TIMELY_PORT}" for name, _ in processes]
    # The dashboard is process 0's; no other process publishes a port.
    assert [bool(s.get("ports")) for _, s in processes] == [True] + [False] * (len(processes) - 1)


def test_compose_prometheus_scrapes_every_process():
    prometheus = (COMPOSE_DIR / "prometheus.yml").read_text()
    for name, _ in compose_processes():
        assert f'"{name}:{METRICS_PORT}"' in prometheus


def test_compose_references_exist():
    spec = compose()
    for kind in ("configs", "secrets"):
        for name, entry in spec[kind].items():
            assert "file" not in entry or (COMPOSE_DIR / entry["file"]).is_file(), (kind, name)
    for name, service in spec["services"].items():
        assert set(service.get("depends_on", {})) <= set(spec["services"]), name
        for kind in ("configs", "secrets"):
            used = {c if isinstance(c, str) else c["source"] for c in service.get(kind, [])}
            assert used <= set(spec[kind]), (name, kind)


def shopflow_variables():
    """Every SHOPFLOW_* variable the image, the compose file and the manifests set."""
    names = set(re.findall(r"^ENV (SHOPFLOW_[A-Z0-9_]+)=", DOCKERFILE.read_text(), re.M))
    for service in compose()["services"].values():
        names |= set(compose_env(service))
    for _, obj in k8s_objects():
        if obj["kind"] == "StatefulSet":
            names |= {e["name"] for c in containers(obj["spec"]["template"]["spec"]) for e in c.get("env", [])}
    return {n for n in names if n.startswith("SHOPFLOW_")}


def test_every_shopflow_variable_is_one_shopflow_knows():
    unknown = shopflow_variables() - documented_vars()
    assert unknown == set(), f"not in docs/configuration.md: {sorted(unknown)}"


def test_every_config_key_is_one_shopflow_knows():
    files = {"deploy/compose/shopflow.toml": (COMPOSE_DIR / "shopflow.toml").read_text(),
             "deploy/k8s ConfigMap": k8s("ConfigMap")["data"]["shopflow.toml"]}
    for where, text in files.items():
        unknown = toml_keys(text) - documented_keys()
        assert unknown == set(), f"{where}: not in docs/configuration.md: {sorted(unknown)}"

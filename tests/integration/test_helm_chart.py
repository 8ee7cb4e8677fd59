"""The Helm chart: lint, render (defaults, every option on), Kubernetes schemas, values schema,
Prometheus rules and the Grafana dashboard checked against the metrics the poller exports."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from poller.config import parse_config
from poller.observability import metrics as poller_metrics

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "esm-poller"
ALL_ON = CHART / "ci" / "all-on-values.yaml"
BIN = ROOT / "tests" / "infra" / ".cache" / "bin"
CRD_SCHEMAS = Path(__file__).parent / "crd_schemas"
KUBE_VERSION = "1.30.0"  # renders must not depend on the Kubernetes version helm was built for
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas shipped.
SCHEMA_VERSIONS = ("1.25.0", kubernetes_validate.latest_version())
CRD_KINDS = {"ServiceMonitor": "servicemonitor", "PrometheusRule": "prometheusrule",
             "ScaledObject": "scaledobject"}
RELEASE, NAMESPACE = "rel", "ns"
FULLNAME = "rel-esm-poller"
# Labels Prometheus adds to every scraped series (ServiceMonitor targets), and `le` of buckets.
TARGET_LABELS = {"namespace", "service", "pod", "job", "instance", "container", "endpoint"}
PROMQL_WORDS = {"by", "without", "and", "or", "unless", "on", "ignoring", "group_left",
                "group_right", "bool", "offset"}


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make infra` (tests/infra/tools.sh)")
    return str(path)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("helm"), *args], capture_output=True, text=True, timeout=120,
                          check=False, cwd=ROOT)


def render(*args: str) -> list[dict[str, Any]]:
    result = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                  "--kube-version", KUBE_VERSION, *args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for d in docs:
        key = d["kind"] if d["kind"] not in out else f"{d['kind']}/{d['metadata']['name']}"
        out[key] = d
    return out


@pytest.fixture(scope="module")
def default_docs() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def all_on_docs() -> list[dict[str, Any]]:
    return render("-f", str(ALL_ON))


HPA_ARGS = ("--set", "autoscaling.enabled=true", "--set", "config.state.store=dynamodb",
            "--set", "persistence.enabled=false")


# --- helm lint and rendering ------------------------------------------------------------------


@pytest.mark.parametrize("values", [(), ("-f", str(ALL_ON)), HPA_ARGS],
                         ids=["defaults", "all-on", "hpa"])
def test_helm_lint_is_clean(values: tuple[str, ...]) -> None:
    result = helm("lint", "--strict", "--kube-version", KUBE_VERSION, str(CHART), *values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("variant", ["defaults", "all-on", "hpa", "no-persistence"])
def test_rendered_manifests_match_the_kubernetes_schemas(variant: str) -> None:
    args = {"defaults": (), "all-on": ("-f", str(ALL_ON)), "hpa": HPA_ARGS,
            "no-persistence": ("--set", "persistence.enabled=false")}[variant]
    docs = render(*args)
    assert docs
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            schema = json.loads((CRD_SCHEMAS / f"{CRD_KINDS[doc['kind']]}.json").read_text())
            jsonschema.validate(doc, schema)
            continue
        for version in SCHEMA_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_a_manifest_with_an_unknown_field_fails_the_schema_check(
        default_docs: list[dict[str, Any]]) -> None:
    deployment = json.loads(json.dumps(by_kind(default_docs)["Deployment"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, SCHEMA_VERSIONS[0], strict=True)
    rule = by_kind(render("--set", "prometheusRule.enabled=true"))["PrometheusRule"]
    rule["spec"]["groups"][0]["rules"][0]["fro"] = "5m"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(rule, json.loads((CRD_SCHEMAS / "prometheusrule.json").read_text()))


def _poller_config(docs: list[dict[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(by_kind(docs)["ConfigMap"]["data"]["poller.yaml"])
    return data


def test_defaults_render_one_hardened_replica_wired_to_the_poller_config(
        default_docs: list[dict[str, Any]]) -> None:
    kinds = by_kind(default_docs)
    assert set(kinds) == {"ConfigMap", "Deployment", "PersistentVolumeClaim",
                          "PodDisruptionBudget", "Service", "ServiceAccount", "Pod"}
    raw = _poller_config(default_docs)
    config = parse_config(raw, "configmap")  # the YAML `poller run -c` reads, and it is valid
    deployment = kinds["Deployment"]["spec"]
    pod = deployment["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["replicas"] == 1
    assert deployment["strategy"] == {"type": "Recreate"}
    assert container["args"] == ["run", "-c", "/etc/esm-poller/poller.yaml"]
    assert pod["terminationGracePeriodSeconds"] == config.tuning.drain_grace_seconds + 15
    (port,) = container["ports"]
    assert port == {"name": "metrics", "containerPort": config.metrics.port, "protocol": "TCP"}
    assert config.metrics.host == "0.0.0.0"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    service_port = kinds["Service"]["spec"]["ports"][0]
    assert (service_port["port"], service_port["targetPort"]) == (config.metrics.port, "metrics")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"config": "/etc/esm-poller", "state": "/var/lib/esm-poller", "tmp": "/tmp"}
    assert Path(config.state.path).parent == Path(mounts["state"])
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == \
        kinds["PersistentVolumeClaim"]["metadata"]["name"]
    assert volumes["config"]["configMap"]["name"] == kinds["ConfigMap"]["metadata"]["name"]
    sec = container["securityContext"]
    assert sec["readOnlyRootFilesystem"] is True and sec["allowPrivilegeEscalation"] is False
    assert sec["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
    assert kinds["ServiceAccount"]["automountServiceAccountToken"] is False
    test_pod = kinds["Pod"]
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert f"http://{FULLNAME}:{config.metrics.port}/readyz" in test_pod["spec"]["containers"][0][
        "args"][0]


@pytest.mark.parametrize(("grace", "extra", "expected"),
                         [("120", "15", 135), ("0", "5", 5), ("2.5", "15", 18)])
def test_termination_grace_period_follows_the_drain_grace(grace: str, extra: str,
                                                          expected: int) -> None:
    docs = render("--set-json", f"config.tuning.drain_grace_seconds={grace}",
                  "--set", f"terminationGraceExtraSeconds={extra}")
    pod = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == expected
    assert parse_config(_poller_config(docs)).tuning.drain_grace_seconds == float(grace)


def test_a_config_change_rolls_the_pods() -> None:
    def checksum(*args: str) -> str:
        pod = by_kind(render(*args))["Deployment"]["spec"]["template"]
        value: str = pod["metadata"]["annotations"]["checksum/config"]
        return value
    assert checksum() != checksum("--set", "config.aws.region=eu-west-1")


def test_every_option_on(all_on_docs: list[dict[str, Any]]) -> None:
    kinds = by_kind(all_on_docs)
    assert {"NetworkPolicy", "ServiceMonitor", "PrometheusRule", "ScaledObject",
            "ConfigMap/rel-esm-poller-dashboard"} <= set(kinds)
    assert "HorizontalPodAutoscaler" not in kinds  # KEDA owns the HPA
    deployment = kinds["Deployment"]["spec"]
    assert "replicas" not in deployment  # the autoscaler decides
    pod = deployment["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 135
    env = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef")
           for e in pod["containers"][0]["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == {"name": "aws-keys", "key": "aws_access_key_id"}
    assert env["AWS_SESSION_TOKEN"]["optional"] is True
    assert env["KAFKA_SASL_PASSWORD"] == {"name": "kafka-sasl", "key": "password"}
    assert env["CLICKS_TOKEN"] == {"name": "clicks", "key": "token"}
    assert pod["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"] == \
        deployment["selector"]["matchLabels"]
    assert kinds["ServiceAccount"]["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/esm-poller"}
    monitor = kinds["ServiceMonitor"]["spec"]
    assert monitor["endpoints"][0]["port"] == kinds["Service"]["spec"]["ports"][0]["name"]
    assert monitor["selector"]["matchLabels"].items() <= \
        kinds["Service"]["metadata"]["labels"].items()
    policy = kinds["NetworkPolicy"]["spec"]
    assert policy["ingress"][0]["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    dashboard = kinds["ConfigMap/rel-esm-poller-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["esm-poller.json"]) == \
        json.loads((CHART / "files" / "dashboard.json").read_text())
    trigger = kinds["ScaledObject"]["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus"
    assert metric_names(trigger["metadata"]["query"]) == {"esm_millis_behind_latest"}
    config = _poller_config(all_on_docs)
    assert config["metrics"] == {"host": "0.0.0.0", "port": 9100}
    assert config["state"] == {"store": "dynamodb", "path": "/var/lib/esm-poller/state.db"}
    # All of it is valid poller config, the shared DynamoDB lease store included.
    parsed = parse_config(config, "configmap", env={"CLICKS_TOKEN": "t"})
    assert parsed.state.store == "dynamodb" and parsed.state.table == "esm-poller-leases"


def test_hpa_scales_the_deployment_on_cpu() -> None:
    kinds = by_kind(render(*HPA_ARGS))
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == kinds["Deployment"]["metadata"]["name"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 4)
    volumes = {v["name"]: v for v in kinds["Deployment"]["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes["state"] and "PersistentVolumeClaim" not in kinds


# --- values.schema.json ------------------------------------------------------------------------


BAD_VALUES = {
    "replicas-with-sqlite": (["--set", "replicaCount=2"], "dynamodb"),
    "hpa-with-sqlite": (["--set", "autoscaling.enabled=true"], "dynamodb"),
    "keda-with-sqlite": (["--set", "keda.enabled=true"], "dynamodb"),
    "hpa-and-keda": (["--set", "autoscaling.enabled=true", "--set", "keda.enabled=true",
                      "--set", "config.state.store=dynamodb"], "not"),
    "metrics-port-0": (["--set", "metrics.port=0"], "/metrics/port"),
    "metrics-port-high": (["--set", "metrics.port=70000"], "/metrics/port"),
    "empty-repository": (["--set", "image.repository="], "/image/repository"),
    "pull-policy": (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
    "unknown-key": (["--set", "replicas=2"], "replicas"),
    "chart-owned-metrics": (["--set", "config.metrics.port=9000"], "metrics"),
    "chart-owned-state-path": (["--set", "config.state.path=/x.db"], "path"),
    "no-mappings": (["--set", "config.mappings=null"], "mappings"),
    "mapping-without-arn": (["--set-json", 'config.mappings=[{"FunctionName":"f"}]'],
                            "EventSourceArn"),
    "drain-grace-string": (["--set-string", "config.tuning.drain_grace_seconds=30s"],
                           "drain_grace_seconds"),
    "drain-grace-range": (["--set", "config.tuning.drain_grace_seconds=4000"],
                          "drain_grace_seconds"),
    "error-ratio": (["--set", "prometheusRule.thresholds.invokeErrorRatio=2"],
                    "invokeErrorRatio"),
    "for-duration": (["--set", "prometheusRule.for=ten minutes"], "for"),
    "pvc-size": (["--set", "persistence.size=lots"], "size"),
    "secret-env": (["--set-json", 'secretEnv=[{"name":"X","secretName":"s"}]'], "key"),
    "secret-env-name": (["--set-json", 'secretEnv=[{"name":"1X","secretName":"s","key":"k"}]'],
                        "name"),
    "keda-to-zero": (["--set", "keda.minReplicas=0"], "minReplicas"),
    "log-level": (["--set", "config.log.level=loud"], "level"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_values_schema_rejects_bad_values(case: str) -> None:
    args, field = BAD_VALUES[case]
    result = helm("template", RELEASE, str(CHART), "--kube-version", KUBE_VERSION, *args)
    assert result.returncode != 0, f"{case} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr
    assert field in result.stderr, result.stderr


def test_values_schema_accepts_several_replicas_with_the_shared_lease_store() -> None:
    docs = render("--set", "replicaCount=3", "--set", "config.state.store=dynamodb")
    assert by_kind(docs)["Deployment"]["spec"]["replicas"] == 3


# --- Prometheus rules and the Grafana dashboard ---------------------------------------------------


def exported_series() -> dict[str, set[str]]:
    """Every series name the poller exports, with the label names it carries."""
    suffixes = {"counter": ("_total", "_created"), "gauge": ("",),
                "histogram": ("_bucket", "_count", "_sum", "_created")}
    series: dict[str, set[str]] = {}
    for value in vars(poller_metrics).values():
        if isinstance(value, MetricWrapperBase):
            labels = set(value._labelnames)
            for suffix in suffixes[str(value._type)]:
                extra = {"le"} if suffix == "_bucket" else set()
                series[value._name + suffix] = labels | extra
    return series


def metric_names(expr: str) -> set[str]:
    """The series selected in a PromQL expression (every selector in the chart has braces)."""
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    return set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", without_strings))


def label_names(expr: str) -> set[str]:
    without_strings = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    names = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"", without_strings))
    for group in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", without_strings):
        names |= {n.strip() for n in group.split(",") if n.strip()}
    return names - PROMQL_WORDS


def assert_uses_only_exported_metrics(expr: str, where: str) -> None:
    series = exported_series()
    names = metric_names(expr)
    assert names, f"{where}: no metric in {expr!r}"
    assert "esm_" not in re.sub(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", "", expr), \
        f"{where}: an esm_ name without a selector in {expr!r}"
    allowed = set(TARGET_LABELS)
    for name in names:
        if name == "up":  # Prometheus's own series per target
            continue
        assert name in series, f"{where}: {name} is not exported by poller/observability/metrics.py"
        allowed |= series[name]
    unknown = label_names(expr) - allowed
    assert not unknown, f"{where}: labels {unknown} are not on {names}"


def test_exported_series_cover_the_metric_table() -> None:
    series = exported_series()
    assert series["esm_records_polled_total"] == {"mapping", "shard"}
    assert series["esm_invoke_duration_seconds_bucket"] == {"mapping", "outcome", "le"}
    assert "esm_millis_behind_latest" in series and "esm_shards_total" not in series


def test_the_metric_check_catches_a_wrong_name_or_label() -> None:
    with pytest.raises(AssertionError, match="esm_records_read_total"):
        assert_uses_only_exported_metrics('rate(esm_records_read_total{mapping="m"}[5m])', "x")
    with pytest.raises(AssertionError, match="outcome"):
        assert_uses_only_exported_metrics('sum by (outcome) (esm_retries_total{mapping="m"})',
                                          "x")


def _rule_groups(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = by_kind(docs)["PrometheusRule"]["spec"]["groups"]
    return groups


def test_every_alert_uses_exported_metrics_and_has_a_runbook(
        all_on_docs: list[dict[str, Any]]) -> None:
    rules = [r for g in _rule_groups(all_on_docs) for r in g["rules"]]
    assert {r["alert"] for r in rules} == {
        "EsmPollerDown", "EsmMappingNotPolling", "EsmMappingProblem", "EsmIteratorAgeHigh",
        "EsmFallingBehind", "EsmInvokeErrorRatioHigh", "EsmThrottled", "EsmOnFailureDeliveries",
        "EsmRecordsDropped", "EsmLeasesLost"}
    for rule in rules:
        assert_uses_only_exported_metrics(rule["expr"], rule["alert"])
        assert f'namespace="{NAMESPACE}", service="{FULLNAME}"' in rule["expr"], rule["expr"]
        annotations = rule["annotations"]
        assert annotations["runbook"] and annotations["summary"]
        assert annotations["runbook_url"] == \
            f"https://runbooks.example.com/esm-poller/{rule['alert'].lower()}"
        assert rule["labels"]["severity"] in {"warning", "critical"}


@pytest.fixture(scope="module")
def rules_file(all_on_docs: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
               ) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": _rule_groups(all_on_docs)}))
    return path


def test_promtool_checks_the_rules(rules_file: Path) -> None:
    result = subprocess.run([tool("promtool"), "check", "rules", str(rules_file)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


def test_alerts_fire_on_the_series_the_poller_exports(
        all_on_docs: list[dict[str, Any]], rules_file: Path, tmp_path: Path) -> None:
    """promtool's rule unit tests: series as Prometheus scrapes them from the chart's target."""
    target = f'namespace="{NAMESPACE}", service="{FULLNAME}", pod="p-0", mapping="m1"'
    rules = {r["alert"]: r for g in _rule_groups(all_on_docs) for r in g["rules"]}

    def fires(alert: str, value: str, severity: str) -> dict[str, Any]:
        annotations = {k: re.sub(r"\{\{ \$value[^}]*\}\}", value,
                                 v.replace("{{ $labels.mapping }}", "m1"))
                       for k, v in rules[alert]["annotations"].items()}
        return {"exp_labels": {"severity": severity, "namespace": NAMESPACE, "mapping": "m1"},
                "exp_annotations": annotations}

    tests = {
        "rule_files": [str(rules_file)],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": f'esm_seconds_since_last_poll{{{target}, shard="s-0"}}',
                 "values": "0+60x30"},
                {"series": f'esm_invoke_duration_seconds_count{{{target}, outcome="ok"}}',
                 "values": "0+10x30"},
                {"series": (f'esm_invoke_duration_seconds_count{{{target}, '
                            'outcome="function_error"}'), "values": "0+5x30"},
                {"series": f'esm_records_onfailure_delivered_total{{{target}, shard="s-0"}}',
                 "values": "0x10 3x20"},
                {"series": f'esm_records_dropped_total{{{target}, shard="s-0"}}',
                 "values": "0x30"},
                {"series": f'esm_throttles_total{{{target}, where="invoke"}}',
                 "values": "0+6x30"},
                {"series": f'esm_leases_lost_total{{{target}, reason="renew_refused"}}',
                 "values": "0x10 2x20"},
            ],
            "alert_rule_test": [
                {"eval_time": "25m", "alertname": "EsmMappingNotPolling",
                 "exp_alerts": [fires("EsmMappingNotPolling", "25m 0s", "critical")]},
                {"eval_time": "4m", "alertname": "EsmMappingNotPolling", "exp_alerts": []},
                {"eval_time": "20m", "alertname": "EsmInvokeErrorRatioHigh",
                 "exp_alerts": [fires("EsmInvokeErrorRatioHigh", "33.33%", "warning")]},
                {"eval_time": "15m", "alertname": "EsmOnFailureDeliveries",
                 "exp_alerts": [fires("EsmOnFailureDeliveries", "3", "warning")]},
                {"eval_time": "20m", "alertname": "EsmRecordsDropped", "exp_alerts": []},
                {"eval_time": "20m", "alertname": "EsmThrottled", "exp_alerts": []},
                {"eval_time": "5m", "alertname": "EsmLeasesLost", "exp_alerts": []},
                {"eval_time": "15m", "alertname": "EsmLeasesLost",
                 "exp_alerts": [fires("EsmLeasesLost", "2", "warning")]},
            ],
        }],
    }
    test_file = tmp_path / "rules_test.yaml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run([tool("promtool"), "test", "rules", str(test_file)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def _dashboard_exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
        for inner in panel.get("panels", []):
            for target in inner.get("targets", []):
                yield inner["title"], target["expr"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            yield f"variable {var['name']}", var["definition"]


def test_dashboard_panels_query_only_exported_metrics() -> None:
    dashboard = json.loads((CHART / "files" / "dashboard.json").read_text())
    assert dashboard["uid"] == "esm-poller"
    exprs = list(_dashboard_exprs(dashboard))
    titles = {p["title"] for p in dashboard["panels"] if p["type"] != "row"}
    assert {"Records in / out", "Iterator age and lag", "Invoke duration",
            "Errors, retries, throttles", "On-failure deliveries and drops",
            "Shards per replica", "Leases per replica", "Time to balance"} <= titles
    for where, expr in exprs:
        query = expr.replace("$__rate_interval", "5m")
        query = re.sub(r"label_values\((.*), *\w+\)$", r"\1", query)
        assert_uses_only_exported_metrics(query, where)
    used = {name for _, e in exprs for name in metric_names(e)}
    dashboard_misses = {n.removesuffix("_total") for n in exported_series()
                        if n.endswith("_total")} - {n.removesuffix("_total") for n in used}
    assert dashboard_misses == set(), "every counter is on the dashboard"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_an_existing_claim_and_service_account_are_used_not_created() -> None:
    kinds = by_kind(render("--set", "persistence.existingClaim=old-state",
                           "--set", "serviceAccount.create=false",
                           "--set", "serviceAccount.name=poller-irsa"))
    assert "PersistentVolumeClaim" not in kinds and "ServiceAccount" not in kinds
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"] == {"claimName": "old-state"}
    assert pod["serviceAccountName"] == "poller-irsa"


def test_values_schema_accepts_every_setting_the_poller_reads() -> None:
    """The chart's schema must not refuse a key the poller's own config accepts."""
    from poller.config import _TOP_FIELDS, TUNING_RANGES

    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]["properties"]
    owned_by_chart = {"state", "metrics"}  # set by the chart itself (state volume, probes)
    assert set(_TOP_FIELDS) - owned_by_chart <= set(config)
    assert set(TUNING_RANGES) <= set(config["tuning"]["properties"])
    values = {"config": {
        "mappings": [{"EventSourceArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
                      "FunctionName": "f", "StartingPosition": "LATEST"}],
        "tuning": {name: hi for name, (_lo, hi) in TUNING_RANGES.items()},
        "msk": {"clusters": {"arn:aws:kafka:us-east-1:123456789012:cluster/c/x": "b-1:9096"}},
        "mq": {"brokers": {"arn:aws:mq:us-east-1:123456789012:broker:b:b-1": "amqps://h:5671"}},
        "secrets": {"arn:aws:secretsmanager:us-east-1:123456789012:secret:s": {"env": "S"}},
    }}
    validator = jsonschema.Draft7Validator({**schema, "required": []})
    problems = [e.message for e in validator.iter_errors(values)
                if list(e.absolute_path)[:1] == ["config"]]
    assert problems == []

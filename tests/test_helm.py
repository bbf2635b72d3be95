"""The Helm chart: it renders, validates offline, and wires what it promises.

Each ``ci/*.yaml`` values file is rendered with the real helm binary and the
output validated against Kubernetes' schemas (kubernetes-validate, strict) and the
Prometheus operator's (charts/tools/validate-crs.mjs). ``bash charts/tools/install.sh``
installs helm and the operator's schemas; ``.ci/run`` does so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from exporter import __version__
from exporter.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "governance-exporter"
TOOLS = ROOT / "charts" / "tools"
HELM = TOOLS / "bin" / "helm"
RULES = ROOT / "prometheus" / "rules" / "governance.rules.yml"
RULES_COPY = CHART / "files" / "governance.rules.yml"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
SYNC = "python3 charts/sync-rules.py"
# The chart's kubeVersion floor and the newest schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.25", kubernetes_validate.latest_version())
# Options the chart sets itself rather than under config:.
WIRED_OPTIONS = {
    "database_url",
    "database_url_file",
    "listen_address",
    "web_config_file",
    "repo_spec",
}
INSTALL_HINT = "run `bash charts/tools/install.sh` (.ci/run does)"

Manifest = dict[str, Any]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM.is_file(), f"no {HELM.relative_to(ROOT)}: {INSTALL_HINT}"
    return subprocess.run(
        [str(HELM), *args], capture_output=True, text=True, timeout=120, check=False
    )


@cache
def render_text(values: Path | None, *sets: str) -> str:
    args = ["template", "dao-alpha", str(CHART), "--namespace", "governance"]
    if values is not None:
        args += ["--values", str(values)]
    for item in sets:
        args += ["--set", item]
    result = helm(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(values: Path | None, *sets: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(render_text(values, *sets)) if doc]


def only(manifests: list[Manifest], kind: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def pod_spec(manifests: list[Manifest]) -> Manifest:
    spec: Manifest = only(manifests, "Deployment")["spec"]["template"]["spec"]
    return spec


def exporter_container(manifests: list[Manifest]) -> Manifest:
    containers: list[Manifest] = pod_spec(manifests)["containers"]
    (container,) = containers
    return container


def env_of(container: Manifest) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def values_of(path: Path) -> Manifest:
    data: Manifest = yaml.safe_load(path.read_text())
    return data


def operator_errors(resources: list[Manifest]) -> list[Manifest]:
    """Each resource's verdict from the Prometheus operator's schemas."""
    node = shutil.which("node")
    assert node, "no node: .ci/run installs nodejs"
    assert (TOOLS / "node_modules").is_dir(), f"no charts/tools/node_modules: {INSTALL_HINT}"
    result = subprocess.run(
        [node, "validate-crs.mjs"],
        cwd=TOOLS,
        input=json.dumps(resources),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    verdicts = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(verdicts) == len(resources), result.stderr
    assert result.returncode == (1 if any(v["error"] for v in verdicts) else 0), result.stderr
    return verdicts


def kubernetes_error(manifest: Manifest, version: str) -> str | None:
    try:
        kubernetes_validate.validate(manifest, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{'.'.join(map(str, exc.path))}: {exc.message}"
    return None


def rules_groups(path: Path) -> list[Manifest]:
    groups: list[Manifest] = yaml.safe_load(path.read_text())["groups"]
    return groups


# --- the chart's files -------------------------------------------------------------


def test_app_version_is_the_exporters() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__


def test_the_rules_copy_is_current() -> None:
    """One source: the chart's copy is the repository's rules file, synced."""
    check = subprocess.run(
        ["python3", "charts/sync-rules.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, (
        f"{RULES_COPY.relative_to(ROOT)} differs from {RULES.relative_to(ROOT)}: run `{SYNC}`"
    )
    assert rules_groups(RULES_COPY) == rules_groups(RULES), f"run `{SYNC}`"


def test_the_ci_values_cover_the_variants() -> None:
    names = {p.name for p in CI_VALUES}
    assert {"minimal-values.yaml", "monitoring-values.yaml", "inline-values.yaml"} <= names


# --- rendering and validation ------------------------------------------------------


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_lint_passes(values: Path) -> None:
    result = helm("lint", "--strict", str(CHART), "--values", str(values))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_objects_validate_strictly(values: Path, version: str) -> None:
    core = [m for m in render(values) if not m["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {m["kind"] for m in core} >= {"Deployment", "Service"}
    errors = {f"{m['kind']}/{m['metadata']['name']}": kubernetes_error(m, version) for m in core}
    assert not any(errors.values()), errors


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_operator_objects_validate(values: Path) -> None:
    custom = [m for m in render(values) if m["apiVersion"].startswith("monitoring.coreos.com/")]
    wanted = values_of(values)
    switches = {"ServiceMonitor": "serviceMonitor", "PrometheusRule": "prometheusRule"}
    expected = {kind for kind, key in switches.items() if wanted.get(key, {}).get("enabled")}
    assert {m["kind"] for m in custom} == expected
    verdicts = operator_errors(custom)
    assert [v for v in verdicts if v["error"]] == []


def test_the_validators_reject_a_broken_object() -> None:
    """Both validators can fail: a wrong field type and an unknown field."""
    manifests = render(CHART / "ci" / "monitoring-values.yaml")
    monitor = only(manifests, "ServiceMonitor")
    broken_monitor = json.loads(json.dumps(monitor))
    broken_monitor["spec"]["endpoints"][0]["interval"] = "every minute"
    rule = only(manifests, "PrometheusRule")
    broken_rule = json.loads(json.dumps(rule))
    broken_rule["spec"]["groups"][0]["rules"][0]["expr"] = ["not", "a", "string"]
    verdicts = operator_errors([monitor, broken_monitor, broken_rule])
    assert [v["error"] is None for v in verdicts] == [True, False, False]

    deployment = only(manifests, "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnly"] = True
    assert kubernetes_error(deployment, KUBERNETES_VERSIONS[-1]) is None
    assert "readOnly" in (kubernetes_error(broken, KUBERNETES_VERSIONS[-1]) or "")


# --- what the chart promises -------------------------------------------------------


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_security_settings(values: Path) -> None:
    manifests = render(values)
    deployment = only(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    spec = pod_spec(manifests)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    container = exporter_container(manifests)
    context = container["securityContext"]
    assert context["runAsNonRoot"] is True
    assert context["runAsUser"] == 10215  # the Dockerfile's user
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["requests"]["memory"]
    assert container["resources"]["limits"]["memory"]
    mounts = [m for m in container["volumeMounts"] if m["name"] != "tmp"]
    assert all(m.get("readOnly") for m in mounts), mounts


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_probes_ask_healthz_on_the_served_port(values: Path) -> None:
    container = exporter_container(render(values))
    (port,) = container["ports"]
    assert port["containerPort"] == 10215
    scheme = values_of(values).get("webConfig", {}).get("probeScheme", "HTTP")
    for probe in (container["livenessProbe"], container["readinessProbe"]):
        assert probe["httpGet"] == {"path": "/healthz", "port": port["name"], "scheme": scheme}
    # The listen address and the probed port are one.
    assert env_of(container)["GOVERNANCE_EXPORTER_LISTEN_ADDRESS"] == ":10215"


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_the_database_url_comes_from_the_existing_secret(values: Path) -> None:
    wanted = values_of(values)["database"]
    key = wanted.get("secretKey", "database-url")
    manifests = render(values)
    assert not [m for m in manifests if m["kind"] == "Secret"]
    container = exporter_container(manifests)
    env = env_of(container)
    assert "GOVERNANCE_EXPORTER_DATABASE_URL" not in env
    path = Path(env["GOVERNANCE_EXPORTER_DATABASE_URL_FILE"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
    (volume,) = [v for v in pod_spec(manifests)["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == wanted["existingSecret"]
    assert volume["secret"]["items"] == [{"key": key, "path": path.name}]


def repo_spec_volume(manifests: list[Manifest]) -> tuple[Path, Manifest]:
    container = exporter_container(manifests)
    path = Path(env_of(container)["GOVERNANCE_EXPORTER_REPO_SPEC"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod_spec(manifests)["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["items"] == [{"key": path.name, "path": path.name}]
    return path, volume


def test_the_repo_spec_from_an_existing_configmap() -> None:
    manifests = render(CHART / "ci" / "monitoring-values.yaml")
    _, volume = repo_spec_volume(manifests)
    assert volume["configMap"]["name"] == "dao-alpha-repo-spec"
    assert not [m for m in manifests if m["kind"] == "ConfigMap"]


def test_the_repo_spec_inline() -> None:
    values = CHART / "ci" / "inline-values.yaml"
    manifests = render(values)
    path, volume = repo_spec_volume(manifests)
    config_map = only(manifests, "ConfigMap")
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert config_map["data"][path.name] == values_of(values)["repoSpec"]["content"]
    annotations = only(manifests, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", annotations["checksum/repo-spec"])


def test_no_repo_spec_no_option() -> None:
    manifests = render(CHART / "ci" / "minimal-values.yaml")
    assert "GOVERNANCE_EXPORTER_REPO_SPEC" not in env_of(exporter_container(manifests))
    assert not [m for m in manifests if m["kind"] == "ConfigMap"]


def test_config_covers_every_exporter_option() -> None:
    config = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
    mapped = {re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower() for key in config}
    assert mapped == set(Settings.model_fields) - WIRED_OPTIONS


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_the_exporter_accepts_the_rendered_options(
    values: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment the chart renders is one the exporter's settings take."""
    wanted = values_of(values).get("config", {})
    env = env_of(exporter_container(render(values)))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert str(settings.database_url_file) == env["GOVERNANCE_EXPORTER_DATABASE_URL_FILE"]
    for key, value in wanted.items():
        field = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
        got = getattr(settings, field)
        if isinstance(value, list):
            assert got == tuple(value)
        elif isinstance(value, str) and field.endswith("_dir"):
            assert got == Path(value)
        else:
            assert got == value, field


def test_the_servicemonitor_yields_the_rules_job() -> None:
    """GovernanceExporterDown selects up{job=...}: the scraped job must be that one."""
    (job,) = set(re.findall(r'up\{job="([^"]+)"\}', RULES.read_text()))
    monitor = only(render(CHART / "ci" / "monitoring-values.yaml"), "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    jobs = [r for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
    assert jobs == [{"action": "replace", "targetLabel": "job", "replacement": job}]
    assert endpoint["port"] == "http"
    assert endpoint["path"] == "/metrics"
    selector = monitor["spec"]["selector"]["matchLabels"]
    service = only(render(CHART / "ci" / "monitoring-values.yaml"), "Service")
    assert selector.items() <= service["metadata"]["labels"].items()


def test_the_prometheusrule_is_the_repositorys_rules() -> None:
    rule = only(render(CHART / "ci" / "monitoring-values.yaml"), "PrometheusRule")
    assert rule["spec"]["groups"] == rules_groups(RULES), (
        f"the chart's PrometheusRule differs from {RULES.relative_to(ROOT)}: run `{SYNC}`"
    )


def test_the_prometheusrule_loads_in_prometheus(tmp_path: Path) -> None:
    """What the operator hands Prometheus passes promtool, as the repository's file does."""
    promtool = shutil.which("promtool")
    assert promtool, "no promtool: .ci/run installs Debian's prometheus"
    rule = only(render(CHART / "ci" / "monitoring-values.yaml"), "PrometheusRule")
    rendered = tmp_path / "rendered.rules.yml"
    rendered.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run(
        [promtool, "check", "rules", "--lint=all", "--lint-fatal", str(rendered)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_monitoring_is_off_by_default() -> None:
    kinds = {m["kind"] for m in render(CHART / "ci" / "minimal-values.yaml")}
    assert kinds == {"Deployment", "Service", "ServiceAccount"}


# --- bad values --------------------------------------------------------------------

BAD_VALUES = {
    "database URL in plain text": {
        "database": {"existingSecret": "db", "url": "postgresql://u:secret@db/cogni"}
    },
    "URL as an extra variable": {
        "database": {"existingSecret": "db"},
        "extraEnv": [{"name": "GOVERNANCE_EXPORTER_DATABASE_URL", "value": "postgresql://db"}],
    },
    "no secret named": {"database": {"existingSecret": ""}},
    "two replicas": {"database": {"existingSecret": "db"}, "replicaCount": 2},
    "writable root filesystem": {
        "database": {"existingSecret": "db"},
        "securityContext": {
            "runAsNonRoot": True,
            "readOnlyRootFilesystem": False,
            "allowPrivilegeEscalation": False,
        },
    },
    "misspelt option": {"database": {"existingSecret": "db"}, "config": {"windowSecond": 60}},
    "option of the wrong type": {
        "database": {"existingSecret": "db"},
        "config": {"windowSeconds": "a day"},
    },
    "unknown log level": {"database": {"existingSecret": "db"}, "config": {"logLevel": "LOUD"}},
    "repo-spec twice": {
        "database": {"existingSecret": "db"},
        "repoSpec": {"existingConfigMap": "spec", "content": "governance: {}\n"},
    },
    "scrape interval in words": {
        "database": {"existingSecret": "db"},
        "serviceMonitor": {"enabled": True, "interval": "every minute"},
    },
}


@pytest.mark.parametrize("case", BAD_VALUES, ids=str)
def test_bad_values_are_rejected(case: str, tmp_path: Path) -> None:
    values = tmp_path / "bad-values.yaml"
    values.write_text(yaml.safe_dump(BAD_VALUES[case]))
    lint = helm("lint", str(CHART), "--values", str(values))
    assert lint.returncode != 0, lint.stdout
    template = helm("template", "x", str(CHART), "--values", str(values))
    assert template.returncode != 0, template.stdout
    assert "values don't meet the specifications of the schema" in template.stderr


# --- the documented sidecar --------------------------------------------------------


def sidecar_snippet() -> Manifest:
    readme = (CHART / "README.md").read_text()
    match = re.search(r"<!-- sidecar-snippet -->\n```yaml\n(.*?)```", readme, re.DOTALL)
    assert match, "README.md lost its sidecar snippet"
    snippet: Manifest = yaml.safe_load(match.group(1))
    return snippet


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_sidecar_snippet_is_a_valid_pod_part(version: str) -> None:
    snippet = sidecar_snippet()
    database = {"name": "postgres", "image": "postgres:15", "ports": [{"containerPort": 5432}]}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "dao-alpha-db-0"},
        "spec": {"containers": [database, *snippet["containers"]], "volumes": snippet["volumes"]},
    }
    assert kubernetes_error(pod, version) is None
    (container,) = snippet["containers"]
    chart_container = exporter_container(render(CHART / "ci" / "minimal-values.yaml"))
    context = container["securityContext"]
    for key in ("runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation"):
        assert context[key] == chart_container["securityContext"][key], key
    assert context["capabilities"] == {"drop": ["ALL"]}
    env = env_of(container)
    assert "GOVERNANCE_EXPORTER_DATABASE_URL" not in env
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in snippet["volumes"]}
    url_file = Path(env["GOVERNANCE_EXPORTER_DATABASE_URL_FILE"])
    assert "secret" in volumes[mounts[str(url_file.parent)]]
    repo_spec = Path(env["GOVERNANCE_EXPORTER_REPO_SPEC"])
    assert "configMap" in volumes[mounts[str(repo_spec.parent)]]
    port = container["ports"][0]["name"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port}

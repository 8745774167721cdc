"""Lints and renders the chart with helm-python-sdk (Helm's own library, no
helm binary), checks that every bad-*.yaml is rejected, writes the manifests of
every good-*.yaml to OUT/<case>/ for kubernetes-validate, and asserts the
properties the chart promises. Run by validate.sh: check_chart.py CHART OUT
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import helm_python as helm
import yaml

CHART = Path(sys.argv[1])
OUT = Path(sys.argv[2])
TESTS = CHART / "tests"
# Every MOGOTHROW77_* variable the server knows is listed in the docs; an
# unknown one stops the server with exit 2.
DOCS = CHART.parent / "docs" / "configuration.md"

failures = []
# Custom resources (Prometheus Operator): not in the core Kubernetes schemas
# kubernetes-validate knows, so checked here by structure instead.
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule"}
# The shipped rules the PrometheusRule must carry (files/ links to them).
RULES = CHART.parent / "monitoring" / "prometheus" / "mogothrow77.rules.yml"


def check(ok, what):
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def load(path):
    return yaml.safe_load(path.read_text()) or {}


def known_env_names():
    if not DOCS.is_file():
        return None
    return set(re.findall(r"`(MOGOTHROW77_[A-Z0-9_]+)`", DOCS.read_text()))


def render(values):
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        return chart.render(values, name="demo", namespace="prod")


def pod_checks(case, kind, obj, values, configmap):
    """Checks shared by the server Deployment and the migration Job."""
    spec = obj["spec"]["template"]["spec"]
    sc = values["securityContext"]
    psc = spec.get("securityContext", {})
    (ct,) = spec["containers"]
    csc = ct.get("securityContext", {})
    where = f"{case}: {kind}"
    check(
        psc.get("runAsNonRoot") is True and csc.get("runAsNonRoot") is True,
        f"{where} runAsNonRoot true",
    )
    check(
        (psc.get("runAsUser"), psc.get("runAsGroup"), psc.get("fsGroup"))
        == (sc["runAsUser"], sc["runAsGroup"], sc["fsGroup"]),
        f"{where} runAsUser/runAsGroup/fsGroup = {sc['runAsUser']}/{sc['runAsGroup']}/{sc['fsGroup']}",
    )
    check(csc.get("readOnlyRootFilesystem") is True, f"{where} readOnlyRootFilesystem true")
    check(csc.get("allowPrivilegeEscalation") is False, f"{where} allowPrivilegeEscalation false")
    check(csc.get("capabilities", {}).get("drop") == ["ALL"], f"{where} capabilities drop ALL")
    check(
        psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
        and csc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
        f"{where} seccompProfile RuntimeDefault",
    )
    check(spec.get("automountServiceAccountToken") is False, f"{where} no service account token")

    # Secret volumes: 0440 (288), never the default 0644.
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    secret_vols = [v for v in volumes.values() if "secret" in v]
    check(
        bool(secret_vols)
        and all(
            v["secret"].get("defaultMode") == 288
            and all(i.get("mode", 288) == 288 for i in v["secret"].get("items", []))
            for v in secret_vols
        ),
        f"{where} {len(secret_vols)} secret volume(s) with defaultMode 0440 (288)",
    )
    check(
        not any("projected" in v or "configMap" in v for v in volumes.values()),
        f"{where} no other file volumes",
    )

    # Environment: ConfigMap (Deployment) or inline (Job); secrets never as values.
    env = dict(configmap) if any("configMapRef" in e for e in ct.get("envFrom", [])) else {}
    from_refs = [e["name"] for e in ct.get("env", []) if "valueFrom" in e]
    check(not from_refs, f"{where} no env var is read from a Secret (found: {from_refs or 'none'})")
    env.update({e["name"]: e.get("value", "") for e in ct.get("env", [])})
    leaked = [
        k for k, v in env.items()
        if re.search(r"postgres(ql)?://|\bpassword=|\bhost=", str(v), re.I)
        or k in ("MOGOTHROW77_DATABASE__URL", "MOGOTHROW77_DATABASE__MIGRATION_URL")
    ]
    check(not leaked, f"{where} no env var carries a database URL (found: {leaked or 'none'})")
    known = known_env_names()
    if known is not None:
        unknown = sorted(set(env) - known)
        check(not unknown, f"{where} every MOGOTHROW77_* variable is a documented key (unknown: {unknown or 'none'})")

    # Every *_FILE variable names a file projected from a mounted Secret.
    mounts = {m["name"]: m["mountPath"] for m in ct.get("volumeMounts", [])}
    files = {}
    for name, v in volumes.items():
        if "secret" in v and name in mounts:
            for item in v["secret"].get("items", []):
                files[f"{mounts[name]}/{item['path']}"] = (v["secret"]["secretName"], item["key"])
    for k in sorted(env):
        if k.endswith("_FILE"):
            check(env[k] in files, f"{where} {k}={env[k]} is mounted from Secret {files.get(env[k])}")
    check("MOGOTHROW77_DATABASE__URL_FILE" in env, f"{where} gets DATABASE__URL_FILE")
    # With an external database the server refuses to start without it.
    check(
        files.get(env.get("MOGOTHROW77_SECRETS__KEY_FILE"))
        == (values["secrets"]["keySecret"]["name"], values["secrets"]["keySecret"].get("key", "secrets.key")),
        f"{where} gets SECRETS__KEY_FILE from Secret {values['secrets']['keySecret']['name']}",
    )
    # Least privilege: only the migration Job gets the schema owner's secret.
    wants_owner = kind == "Job"
    check(
        ("MOGOTHROW77_DATABASE__MIGRATION_URL_FILE" in env) == wants_owner,
        f"{where} gets DATABASE__MIGRATION_URL_FILE iff it migrates ({wants_owner})",
    )
    owner_secret = values["database"]["migrationUrlSecret"]["name"]
    mounted_secrets = {v["secret"]["secretName"] for v in volumes.values() if "secret" in v}
    if not wants_owner and owner_secret != values["database"]["urlSecret"]["name"]:
        check(owner_secret not in mounted_secrets, f"{where} does not mount the owner's Secret {owner_secret}")
    db_ca = bool(values["database"].get("caSecret", {}).get("name"))
    check(("MOGOTHROW77_DATABASE__CA_FILE" in env) == db_ca, f"{where} DATABASE__CA_FILE set iff caSecret.name ({db_ca})")

    # state_dir: inside a writable emptyDir.
    state_dir = env.get("MOGOTHROW77_STATE_DIR", "")
    empty_mounts = [mounts[n] for n, v in volumes.items() if "emptyDir" in v and n in mounts]
    check(
        any(state_dir.startswith(m.rstrip("/") + "/") for m in empty_mounts),
        f"{where} state_dir {state_dir} lies inside an emptyDir mount {empty_mounts}",
    )
    return ct, env


def check_case(path):
    case = path.stem
    values_in = load(path)
    report = helm.lint(str(CHART), values_in, strict=True, kube_version="v1.30.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    check(not problems, f"{case}: helm lint --strict (kube 1.30.0) {problems or 'clean'}")

    with helm.Chart.load(CHART) as chart:
        values = chart.merge_values(values_in)
    out = render(values_in)
    objs = {}
    case_dir = OUT / case
    case_dir.mkdir(parents=True)
    for template, text in out.items():
        if template.endswith("NOTES.txt"):
            check("kubectl" in text, f"{case}: NOTES.txt rendered")
            continue
        if not text.strip():
            continue
        docs = [doc for doc in yaml.safe_load_all(text) if doc]
        if not any(doc["kind"] in CUSTOM_KINDS for doc in docs):
            (case_dir / os.path.basename(template)).write_text(text)
        for doc in docs:
            objs[(doc["kind"], doc["metadata"]["name"])] = doc
    by_kind = {}
    for (kind, _), doc in objs.items():
        by_kind.setdefault(kind, []).append(doc)
    print(f"      {case}: rendered {', '.join(sorted(k for k, _ in objs))}")

    need = ["helm.sh/chart", "app.kubernetes.io/name", "app.kubernetes.io/instance",
            "app.kubernetes.io/version", "app.kubernetes.io/managed-by"]
    unlabelled = [d["kind"] for d in objs.values() if not all(k in d["metadata"].get("labels", {}) for k in need)]
    check(not unlabelled, f"{case}: every object has the standard labels (missing on: {unlabelled or 'none'})")

    (cm,) = by_kind["ConfigMap"]
    data = cm["data"]
    check(data.get("MOGOTHROW77_DATABASE__AUTO_MIGRATE") == "false", f"{case}: serve runs with AUTO_MIGRATE=false")
    check(data.get("MOGOTHROW77_LISTEN") == "0.0.0.0:8443", f"{case}: listen 0.0.0.0:8443")
    check(data.get("MOGOTHROW77_LOG__FORMAT") == values["log"]["format"], f"{case}: log format {values['log']['format']}")

    # Migration Job: a pre-install/pre-upgrade hook running `migrate`.
    (job,) = by_kind["Job"]
    ann = job["metadata"].get("annotations", {})
    check(ann.get("helm.sh/hook") == "pre-install,pre-upgrade", f"{case}: Job is a pre-install,pre-upgrade hook")
    check(
        set(ann.get("helm.sh/hook-delete-policy", "").split(",")) == {"before-hook-creation", "hook-succeeded"},
        f"{case}: Job hook-delete-policy before-hook-creation,hook-succeeded",
    )
    check(job["spec"].get("backoffLimit", 6) <= 3, f"{case}: Job backoffLimit {job['spec'].get('backoffLimit')} (small)")
    check(job["spec"]["template"]["spec"].get("restartPolicy") == "Never", f"{case}: Job restartPolicy Never")
    jct, _ = pod_checks(case, "Job", job, values, data)
    check(jct.get("args") == ["migrate"], f"{case}: Job runs `mogothrow77 migrate`")
    job_sa = job["spec"]["template"]["spec"].get("serviceAccountName")
    created_sas = [sa["metadata"]["name"] for sa in by_kind.get("ServiceAccount", [])]
    check(job_sa not in created_sas, f"{case}: Job uses no ServiceAccount the release creates after the hook ({job_sa or 'default'})")

    # Server Deployment.
    (dep,) = by_kind["Deployment"]
    check(dep["spec"]["replicas"] == values["replicas"], f"{case}: Deployment replicas {values['replicas']}")
    ct, env = pod_checks(case, "Deployment", dep, values, data)
    check(ct.get("args") == ["serve"], f"{case}: Deployment runs `mogothrow77 serve`")
    app_version = load(CHART / "Chart.yaml")["appVersion"]
    tag = values["image"]["tag"] or app_version
    check(ct["image"] == f"{values['image']['repository']}:{tag}", f"{case}: image {ct['image']}")
    tls = values["tls"]["enabled"]
    scheme = "HTTPS" if tls else "HTTP"
    probes = {p: ct.get(p, {}).get("httpGet", {}) for p in ("startupProbe", "readinessProbe", "livenessProbe")}
    check(probes["readinessProbe"].get("path") == "/readyz", f"{case}: readinessProbe GET /readyz")
    check(probes["livenessProbe"].get("path") == "/healthz", f"{case}: livenessProbe GET /healthz")
    check(probes["startupProbe"].get("path") == "/healthz", f"{case}: startupProbe GET /healthz")
    check(all(p.get("scheme") == scheme for p in probes.values()), f"{case}: probes use {scheme}")
    check(
        ct["readinessProbe"]["timeoutSeconds"] > values["database"]["connectTimeoutSecs"],
        f"{case}: readiness timeout exceeds database.connectTimeoutSecs",
    )
    check(data.get("MOGOTHROW77_TLS__ENABLED") == ("true" if tls else "false"), f"{case}: TLS__ENABLED={str(tls).lower()}")
    check(
        ("MOGOTHROW77_TLS__CERT_FILE" in env and "MOGOTHROW77_TLS__KEY_FILE" in env) == tls,
        f"{case}: TLS cert/key files {'mounted' if tls else 'absent'}",
    )
    pod = dep["spec"]["template"]
    check("checksum/config" in pod["metadata"].get("annotations", {}), f"{case}: pods roll when the ConfigMap changes")
    def selects(selector, labels):
        return all(labels.get(k) == v for k, v in selector.items())

    drain = values["http"]["drainDelaySecs"] + values["http"]["shutdownGraceSecs"]
    check(
        pod["spec"]["terminationGracePeriodSeconds"] > drain,
        f"{case}: terminationGracePeriodSeconds exceeds http.drainDelaySecs + shutdownGraceSecs",
    )
    check(
        data.get("MOGOTHROW77_HTTP__DRAIN_DELAY_SECS") == str(values["http"]["drainDelaySecs"]),
        f"{case}: HTTP__DRAIN_DELAY_SECS={values['http']['drainDelaySecs']}",
    )
    readiness = ct["readinessProbe"]
    check(
        values["http"]["drainDelaySecs"] == 0
        or readiness["periodSeconds"] * readiness["failureThreshold"] < values["http"]["drainDelaySecs"],
        f"{case}: the readiness probe sees a stopping pod within http.drainDelaySecs",
    )
    check(
        all("preStop" not in c.get("lifecycle", {}) for c in pod["spec"]["containers"]),
        f"{case}: no preStop hook (the drain delay does its work)",
    )
    if values["replicas"] > 1 and not values.get("affinity"):
        terms = (
            pod["spec"].get("affinity", {}).get("podAntiAffinity", {})
            .get("preferredDuringSchedulingIgnoredDuringExecution", [])
        )
        check(
            any(
                t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
                and selects(t["podAffinityTerm"]["labelSelector"]["matchLabels"], pod["metadata"]["labels"])
                for t in terms
            ),
            f"{case}: replicas spread over nodes (soft anti-affinity)",
        )
    server_labels = pod["metadata"]["labels"]
    job_labels = job["spec"]["template"]["metadata"]["labels"]

    (svc,) = by_kind["Service"]
    check(svc["spec"]["ports"][0]["port"] == values["service"]["port"], f"{case}: Service port {values['service']['port']}")
    check(
        selects(svc["spec"]["selector"], server_labels) and not selects(svc["spec"]["selector"], job_labels),
        f"{case}: Service selects server pods, not migration pods",
    )
    want_pdb = values["podDisruptionBudget"]["enabled"] and values["replicas"] > 1
    pdbs = by_kind.get("PodDisruptionBudget", [])
    check(len(pdbs) == int(want_pdb), f"{case}: PodDisruptionBudget {'rendered' if want_pdb else 'absent'} (replicas {values['replicas']})")
    for pdb in pdbs:
        sel = pdb["spec"]["selector"]["matchLabels"]
        check(selects(sel, server_labels) and not selects(sel, job_labels), f"{case}: PDB selects server pods only")
    metrics_checks(case, values, by_kind, env, svc, server_labels)
    prometheus_rule_checks(case, values, by_kind, svc)
    if values["serviceAccount"]["create"]:
        (sa,) = by_kind["ServiceAccount"]
        check(sa.get("automountServiceAccountToken") is False, f"{case}: ServiceAccount automountServiceAccountToken false")
        check(pod["spec"]["serviceAccountName"] == sa["metadata"]["name"], f"{case}: Deployment uses the ServiceAccount")
    else:
        check("ServiceAccount" not in by_kind, f"{case}: no ServiceAccount created")


def metrics_checks(case, values, by_kind, env, svc, server_labels):
    """The scrape token mounted from its Secret, the allowed blocks passed
    on, and the optional ServiceMonitor sending that token to the server's
    port with the scheme it serves."""
    m = values["metrics"]
    token = m["tokenSecret"]["name"]
    check(
        ("MOGOTHROW77_METRICS__TOKEN_FILE" in env) == bool(token),
        f"{case}: METRICS__TOKEN_FILE set iff metrics.tokenSecret.name ({bool(token)})",
    )
    allow = env.get("MOGOTHROW77_METRICS__ALLOW_ADDRESSES")
    check(
        (json.loads(allow) if allow else []) == m["allowAddresses"],
        f"{case}: METRICS__ALLOW_ADDRESSES carries metrics.allowAddresses {m['allowAddresses']}",
    )
    monitors = by_kind.get("ServiceMonitor", [])
    want = m["serviceMonitor"]["enabled"]
    check(len(monitors) == int(want), f"{case}: ServiceMonitor {'rendered' if want else 'absent (off by default)'}")
    for sm in monitors:
        check(sm["apiVersion"] == "monitoring.coreos.com/v1", f"{case}: ServiceMonitor apiVersion monitoring.coreos.com/v1")
        sel = sm["spec"]["selector"]["matchLabels"]
        check(
            all(svc["metadata"]["labels"].get(k) == v for k, v in sel.items()),
            f"{case}: ServiceMonitor selects the Service",
        )
        (ep,) = sm["spec"]["endpoints"]
        port = svc["spec"]["ports"][0]["name"]
        scheme = "https" if values["tls"]["enabled"] else "http"
        check(ep["port"] == port and ep["scheme"] == scheme and ep["path"] == "/metrics",
              f"{case}: ServiceMonitor scrapes {scheme} port {port} /metrics")
        cred = ep.get("authorization", {})
        check(
            cred.get("type") == "Bearer"
            and cred.get("credentials") == {"name": token, "key": m["tokenSecret"]["key"]},
            f"{case}: ServiceMonitor sends the token of Secret {token}",
        )
        for label, value in m["serviceMonitor"]["labels"].items():
            check(sm["metadata"]["labels"].get(label) == value, f"{case}: ServiceMonitor label {label}={value}")
        fullname = svc["metadata"]["name"]
        check(
            {"action": "replace", "targetLabel": "job", "replacement": fullname} in ep.get("relabelings", []),
            f"{case}: ServiceMonitor names the job {fullname}",
        )
        if values["tls"]["enabled"]:
            ca = ep.get("tlsConfig", {}).get("ca", {}).get("secret", {})
            check(
                ca == {"name": values["tls"]["secretName"], "key": m["serviceMonitor"]["caKey"]},
                f"{case}: ServiceMonitor verifies the server with the CA from {values['tls']['secretName']}",
            )
            check("insecureSkipVerify" not in ep.get("tlsConfig", {}), f"{case}: ServiceMonitor does not skip verification")


def prometheus_rule_checks(case, values, by_kind, svc):
    """The optional PrometheusRule: the shipped rules, runbook links under
    the base, alerts selecting the ServiceMonitor's job."""
    m = values["metrics"]
    rules = by_kind.get("PrometheusRule", [])
    want = m["prometheusRule"]["enabled"]
    check(len(rules) == int(want), f"{case}: PrometheusRule {'rendered' if want else 'absent (off by default)'}")
    if not rules:
        return
    (rule,) = rules
    check(rule["apiVersion"] == "monitoring.coreos.com/v1", f"{case}: PrometheusRule apiVersion monitoring.coreos.com/v1")
    for label, value in m["prometheusRule"]["labels"].items():
        check(rule["metadata"]["labels"].get(label) == value, f"{case}: PrometheusRule label {label}={value}")
    shipped = yaml.safe_load(RULES.read_text())
    names = lambda groups: [(g["name"], [r.get("alert") or r.get("record") for r in g["rules"]]) for g in groups]
    check(names(rule["spec"]["groups"]) == names(shipped["groups"]), f"{case}: PrometheusRule carries the shipped groups and rules")
    base = (m["prometheusRule"]["runbookBase"] or f"https://{values['tls']['hostnames'][0]}/docs").rstrip("/")
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    check(
        all(r["annotations"]["runbook_url"].startswith(base + "/runbooks/alerts.md#") for r in alerts),
        f"{case}: every alert's runbook_url is under {base}",
    )
    check(all(r["labels"]["severity"] in ("critical", "warning") for r in alerts), f"{case}: every alert has a severity")
    promtool = shutil.which("promtool")
    if promtool:
        rendered = OUT / f"{case}-prometheusrule-groups.yml"
        rendered.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        result = subprocess.run([promtool, "check", "rules", str(rendered)], capture_output=True, text=True)
        check(result.returncode == 0, f"{case}: promtool check rules on the PrometheusRule's groups {result.stdout.strip().splitlines()[-1:]}")
    text = yaml.safe_dump(rule)
    job = svc["metadata"]["name"]
    check("__RUNBOOK_BASE__" not in text and 'job="mogothrow77"' not in text and f'job="{job}"' in text,
          f"{case}: PrometheusRule selects job {job}, no placeholder left")


def check_rejected(path):
    values = load(path)
    try:
        render(values)
    except helm.HelmError as e:
        first = str(e).strip().splitlines()
        check(True, f"{path.stem}: rejected ({type(e).__name__}: {' '.join(first[-1:]).strip()})")
    else:
        check(False, f"{path.stem}: should have been rejected by values.schema.json")


def main():
    schema = CHART / "values.schema.json"
    doc = json.loads(schema.read_text())
    check(
        doc.get("$schema") == "http://json-schema.org/draft-07/schema#" and doc.get("additionalProperties") is False,
        "values.schema.json is draft-07 and rejects unknown top-level keys",
    )
    good = sorted(TESTS.glob("good-*.yaml"))
    bad = sorted(TESTS.glob("bad-*.yaml"))
    check(len(good) >= 4 and len(bad) >= 1, f"{len(good)} good and {len(bad)} bad values files")
    try:
        render({})
    except helm.HelmError:
        check(True, "values.yaml alone is rejected (database and TLS Secrets must be named)")
    else:
        check(False, "values.yaml alone should be rejected (required Secrets unset)")
    for path in bad:
        check_rejected(path)
    for path in good:
        check_case(path)
    if failures:
        print(f"{len(failures)} check(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

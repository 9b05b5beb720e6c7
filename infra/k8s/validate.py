#!/usr/bin/env python3
"""Renders each kustomize overlay under infra/k8s/overlays and validates it offline.

usage: infra/k8s/validate.py [--kubectl KUBECTL] [--radstream BIN] [--kubernetes-version V]...

For every overlay:
  * render it with `kubectl kustomize` (default: Debian 12's kubernetes-client, kubectl 1.20
    with kustomize v2.0, unpacked into the cache by `infra/stack.sh install`; $RADSTREAM_KUBECTL
    or --kubectl names another);
  * validate every core object against the Kubernetes JSON schemas that PyPI's
    kubernetes-validate bundles (strict: unknown fields fail), for each --kubernetes-version;
  * validate KEDA's ScaledObject against schemas/keda-scaledobject-v1alpha1.subset.json (a subset
    written from KEDA's CRD, said so in the output); any other custom resource fails;
  * cross-check the objects with the worker's TOML: drain deadline below the grace period,
    probes on the metrics port, KEDA's target, group, topic and brokers, replicas at most the
    partition count, topic names of the topics Job, PDB and Service selectors, placeholder-only
    Secret values, and the GPU pool's node selector, toleration and GPU limit;
  * run `radstream validate` on the rendered TOML with the container's RADSTREAM_* variables
    (--radstream or $RADSTREAM_BIN; skipped with a note without one).

Exit status: 0 when everything passed, 1 when a check failed, 3 when a tool is missing (the
message names it and how to install it: `infra/stack.sh install`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
OVERLAYS = ("cpu", "gpu")
KEDA_SCHEMA = HERE / "schemas" / "keda-scaledobject-v1alpha1.subset.json"
# The oldest and the newest Kubernetes minor versions the manifests are checked against.
DEFAULT_VERSIONS = ("1.27.0", "1.37.0")
MISSING_TOOL = 3


def missing(what: str) -> None:
    print(f"validate.py: missing tool: {what} (infra/stack.sh install installs it)", file=sys.stderr)
    sys.exit(MISSING_TOOL)


def default_kubectl() -> str | None:
    if os.environ.get("RADSTREAM_KUBECTL"):
        return os.environ["RADSTREAM_KUBECTL"]
    cache = Path(os.environ.get("RADSTREAM_CACHE_DIR", Path.home() / ".cache" / "radstream"))
    candidate = cache / "kubernetes-client" / "usr" / "bin" / "kubectl"
    return str(candidate) if candidate.exists() else None


class Checker:
    def __init__(self) -> None:
        self.failures: list[str] = []
        self.passed = 0

    def check(self, ok: bool, what: str) -> None:
        if ok:
            self.passed += 1
        else:
            self.failures.append(what)
            print(f"  FAIL {what}")


def render(kubectl: str, overlay: Path) -> list[dict]:
    import yaml

    out = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay} failed:\n{out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict], kind: str, c: Checker) -> dict:
    found = by_kind(docs, kind)
    c.check(len(found) == 1, f"exactly one {kind} (found {len(found)})")
    return found[0] if found else {}


def validate_schemas(docs: list[dict], versions: list[str], c: Checker) -> None:
    import jsonschema
    import kubernetes_validate

    keda = json.loads(KEDA_SCHEMA.read_text())
    for doc in docs:
        name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        api = doc.get("apiVersion", "")
        if api.startswith("keda.sh/"):
            errors = sorted(jsonschema.Draft202012Validator(keda).iter_errors(doc), key=str)
            for e in errors:
                print(f"  {name}: {'/'.join(map(str, e.path))}: {e.message}")
            c.check(not errors, f"{name} against {KEDA_SCHEMA.name}")
            print(f"  note: {name} checked against a subset schema written from KEDA's CRD, not KEDA's own")
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
                c.check(True, "")
            except kubernetes_validate.ValidationError as e:
                c.check(False, f"{name} (Kubernetes {version}): {'/'.join(map(str, e.path))}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                # Another custom resource: never skipped silently.
                c.check(False, f"{name} (Kubernetes {version}): no schema for {api}: {e}")


def cross_check(overlay: str, docs: list[dict], c: Checker) -> tuple[str, dict[str, str]]:
    config_maps = by_kind(docs, "ConfigMap")
    worker_cm = [m for m in config_maps if "radstream.toml" in m.get("data", {})]
    c.check(len(worker_cm) == 1, "one ConfigMap with radstream.toml")
    toml_text = worker_cm[0]["data"]["radstream.toml"] if worker_cm else ""
    config = tomllib.loads(toml_text) if toml_text else {}
    topics_cm = [m for m in config_maps if "PARTITIONS" in m.get("data", {})]
    c.check(len(topics_cm) == 1, "one ConfigMap with the topics Job's parameters")
    params = topics_cm[0]["data"] if topics_cm else {}

    deployment = one(docs, "Deployment", c)
    pod = deployment.get("spec", {}).get("template", {}).get("spec", {})
    pod_labels = deployment.get("spec", {}).get("template", {}).get("metadata", {}).get("labels", {})
    container = (pod.get("containers") or [{}])[0]
    kafka = config.get("kafka", {})
    runtime = config.get("runtime", {})
    operators = config.get("operators", [])

    drain = runtime.get("drain_deadline_secs", 30)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    c.check(grace > drain, f"terminationGracePeriodSeconds {grace} > runtime.drain_deadline_secs {drain}")

    listen = config.get("metrics", {}).get("listen", "127.0.0.1:9464")
    host, _, port = listen.rpartition(":")
    c.check(host in ("0.0.0.0", "[::]"), f"metrics.listen {listen} listens on the pod IP")
    ports = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
    c.check(str(ports.get("metrics")) == port, f"containerPort `metrics` {ports.get('metrics')} = metrics.listen port {port}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        c.check(get.get("path") == path and get.get("port") in ("metrics", ports.get("metrics")),
                f"{probe} is GET {path} on the metrics port")

    so = one(docs, "ScaledObject", c)
    spec = so.get("spec", {})
    partitions = int(params.get("PARTITIONS", "0"))
    lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    c.check(1 <= lo <= hi <= partitions, f"1 <= minReplicaCount {lo} <= maxReplicaCount {hi} <= PARTITIONS {partitions}")
    c.check(spec.get("scaleTargetRef", {}).get("name") == deployment.get("metadata", {}).get("name"),
            "ScaledObject targets the worker Deployment")
    kafka_triggers = [t for t in spec.get("triggers", []) if t.get("type") == "kafka"]
    c.check(len(kafka_triggers) == 1, "one kafka trigger")
    meta = kafka_triggers[0].get("metadata", {}) if kafka_triggers else {}
    group = kafka.get("group_id", "radstream")
    c.check(meta.get("consumerGroup") == group, f"trigger consumerGroup {meta.get('consumerGroup')} = kafka.group_id {group}")
    c.check(meta.get("topic") == kafka.get("input_topic"), f"trigger topic = kafka.input_topic {kafka.get('input_topic')}")
    c.check(meta.get("bootstrapServers") == kafka.get("brokers"), "trigger bootstrapServers = kafka.brokers")
    c.check(params.get("BOOTSTRAP_SERVERS") == kafka.get("brokers"), "topics Job BOOTSTRAP_SERVERS = kafka.brokers")

    def op(kind: str) -> dict:
        found = [o for o in operators if o.get("type") == kind]
        return found[0] if found else {}

    expected_topics = {
        "INPUT_TOPIC": kafka.get("input_topic"),
        "DEAD_LETTER_TOPIC": kafka.get("dead_letter_topic", "radstream.dead-letter"),
        "OUTCOME_TOPIC": kafka.get("outcome_topic", "radstream.outcomes"),
        "ALERT_TOPIC": op("alert").get("topic"),
        "FHIR_TOPIC": op("fhir").get("topic"),
        "AUDIT_TOPIC": op("pseudonymize").get("audit_topic"),
        "LINK_TOPIC": op("pseudonymize").get("link_topic"),
    }
    for key, topic in expected_topics.items():
        c.check(topic is not None and params.get(key) == topic, f"topics Job {key} {params.get(key)} = the config's {topic}")
    c.check(op("relink").get("link_topic") == params.get("LINK_TOPIC"), "relink reads the link topic pseudonymize writes")
    job = one(docs, "Job", c)
    script = " ".join(job.get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0].get("args", []))
    c.check('create "$LINK_TOPIC" --config cleanup.policy=compact' in script, "the link topic is created compacted")
    for key in ("RETENTION_MS", "DEAD_LETTER_RETENTION_MS", "PARTITIONS", "REPLICATION_FACTOR"):
        c.check(params.get(key, "").lstrip("-").isdigit(), f"topics Job parameter {key} is a number")

    for kind in ("PodDisruptionBudget", "Service"):
        obj = one(docs, kind, c)
        selector = obj.get("spec", {}).get("selector", {})
        selector = selector.get("matchLabels", selector)
        c.check(bool(selector) and all(pod_labels.get(k) == v for k, v in selector.items()),
                f"{kind} selector {selector} matches the worker pods")

    for secret in by_kind(docs, "Secret"):
        values = {**secret.get("stringData", {}), **secret.get("data", {})}
        c.check(all(str(v).startswith("PLACEHOLDER") for v in values.values()),
                f"Secret {secret['metadata']['name']} holds placeholders only")

    if overlay == "gpu":
        c.check(pod.get("nodeSelector", {}).get("nvidia.com/gpu.present") == "true", "GPU pool: node selector")
        c.check(any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])), "GPU pool: toleration")
        gpus = container.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
        c.check(str(gpus) == "1", f"GPU pool: limits nvidia.com/gpu = 1 (found {gpus})")
    else:
        c.check("nvidia.com/gpu" not in container.get("resources", {}).get("limits", {}), "CPU pool: no GPU limit")

    env = {e["name"]: e["value"] for e in container.get("env", []) if e["name"].startswith("RADSTREAM") and "value" in e}
    return toml_text, env


def radstream_validate(radstream: str | None, overlay: str, toml_text: str, env: dict[str, str], c: Checker) -> None:
    if not radstream:
        print(f"  note: `radstream validate` of the {overlay} config skipped: no --radstream / $RADSTREAM_BIN")
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{overlay}.toml"
        path.write_text(toml_text)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("RADSTREAM__")}
        out = subprocess.run([radstream, "validate", "--config", str(path)], capture_output=True, text=True,
                             env={**clean, **env})
        text = (out.stdout + out.stderr).strip()
        print(f"  radstream validate ({len(env)} RADSTREAM_* variables from the container): {text}")
        c.check(out.returncode == 0, f"radstream validate of the {overlay} config (exit {out.returncode})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubectl", default=default_kubectl())
    parser.add_argument("--radstream", default=os.environ.get("RADSTREAM_BIN"))
    parser.add_argument("--kubernetes-version", action="append", dest="versions")
    args = parser.parse_args()
    versions = args.versions or list(DEFAULT_VERSIONS)

    try:
        import jsonschema  # noqa: F401
        import kubernetes_validate  # noqa: F401
        import yaml  # noqa: F401
    except ImportError as e:
        missing(f"Python module {e.name} (PyPI kubernetes-validate)")
    if not args.kubectl or not Path(args.kubectl).exists():
        missing("kubectl for `kubectl kustomize` (Debian's kubernetes-client, unpacked into "
                "~/.cache/radstream/kubernetes-client; or set RADSTREAM_KUBECTL)")

    version = subprocess.run([args.kubectl, "version", "--client", "--short"], capture_output=True, text=True)
    print(f"kubectl: {args.kubectl} ({(version.stdout or version.stderr).strip().splitlines()[0]})")
    from importlib.metadata import version as package_version

    print(f"kubernetes-validate {package_version('kubernetes-validate')}, Kubernetes {', '.join(versions)}, strict")
    c = Checker()
    for overlay in OVERLAYS:
        print(f"overlay {overlay}:")
        try:
            docs = render(args.kubectl, HERE / "overlays" / overlay)
        except RuntimeError as e:
            c.check(False, str(e))
            continue
        print(f"  rendered {len(docs)} objects: {', '.join(sorted(d['kind'] for d in docs))}")
        validate_schemas(docs, versions, c)
        toml_text, env = cross_check(overlay, docs, c)
        radstream_validate(args.radstream, overlay, toml_text, env, c)
    print(f"validate.py: {c.passed} checks passed, {len(c.failures)} failed")
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Cross-checks of deploy/kubernetes that schema validation cannot make: every kustomization
resource exists, the Service, PodDisruptionBudget and ServiceMonitor select the Deployment's pods,
the named ports line up, and the probes hit the provider's health endpoints."""

import pathlib
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"


def load(name):
    return yaml.safe_load((ROOT / name).read_text())


def main():
    problems = []
    kustomization = load("kustomization.yaml")
    docs = {}
    for resource in kustomization["resources"]:
        if not (ROOT / resource).exists():
            problems.append(f"kustomization lists missing {resource}")
            continue
        doc = load(resource)
        docs[doc["kind"]] = doc
    deployment = docs["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container_ports = {p["name"] for p in container["ports"]}

    def selects(selector, what):
        if not all(pod_labels.get(k) == v for k, v in selector.items()):
            problems.append(f"{what} selector {selector} does not match the pods {pod_labels}")

    selects(docs["Service"]["spec"]["selector"], "Service")
    selects(docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"], "PodDisruptionBudget")
    service_ports = {p["name"] for p in docs["Service"]["spec"]["ports"]}
    for port in docs["Service"]["spec"]["ports"]:
        if port["targetPort"] not in container_ports:
            problems.append(f"Service port {port['name']} targets unknown {port['targetPort']}")
    monitor = docs["ServiceMonitor"]
    service_labels = docs["Service"]["metadata"]["labels"]
    if not all(service_labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items()):
        problems.append("ServiceMonitor does not select the Service")
    for endpoint in monitor["spec"]["endpoints"]:
        if endpoint["port"] not in service_ports:
            problems.append(f"ServiceMonitor scrapes unknown port {endpoint['port']}")
    if deployment["spec"]["replicas"] < 2:
        problems.append("run at least two replicas")
    probes = {k: container[k]["httpGet"]["path"] for k in ("livenessProbe", "readinessProbe")}
    if probes != {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}:
        problems.append(f"probes should be /healthz and /readyz, are {probes}")
    security = container["securityContext"]
    if not security.get("readOnlyRootFilesystem") or security.get("allowPrivilegeEscalation", True):
        problems.append("the container must have a read-only root and no privilege escalation")
    if not deployment["spec"]["template"]["spec"]["securityContext"].get("runAsNonRoot"):
        problems.append("the pod must run as non-root")
    for problem in problems:
        print(f"deploy/kubernetes: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

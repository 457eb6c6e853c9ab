"""The KEDA half of `make k8s-check`, and the worker's securityContext (see scripts/k8s-check.sh)."""
import sys

import yaml
import cloudcoil.models.keda.v1alpha1 as keda

path = sys.argv[1]
docs = [d for d in yaml.safe_load_all(open(path)) if d]
kinds = {d["kind"] for d in docs}
for d in docs:
    if d["apiVersion"].startswith("keda.sh/"):
        getattr(keda, d["kind"]).model_validate(d)
        print(f"  {d['kind']} {d['metadata']['name']}: passed (KEDA 2.16's CRD models)", file=sys.stderr)
assert {"ScaledObject", "TriggerAuthentication"} <= kinds, f"KEDA objects missing: {kinds}"

deploy = next(d for d in docs if d["kind"] == "Deployment")
pod = deploy["spec"]["template"]["spec"]
worker = next(c for c in pod["containers"] if c["name"] == "worker")
want_pod = {"runAsNonRoot": True, "runAsUser": 10001}
want_container = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "privileged": False}
problems = [f"pod securityContext.{k} must be {v!r}" for k, v in want_pod.items() if pod.get("securityContext", {}).get(k) != v]
problems += [f"worker securityContext.{k} must be {v!r}" for k, v in want_container.items() if worker.get("securityContext", {}).get(k) != v]
if worker.get("securityContext", {}).get("capabilities", {}).get("drop") != ["ALL"]:
    problems.append("worker securityContext.capabilities.drop must be [ALL]")
if pod.get("securityContext", {}).get("seccompProfile", {}).get("type") != "RuntimeDefault":
    problems.append("pod securityContext.seccompProfile.type must be RuntimeDefault")
if problems:
    sys.exit("k8s-check: " + "; ".join(problems))
print("k8s-check: ok: Kubernetes and KEDA schemas, and the worker runs non-root, read-only, without capabilities", file=sys.stderr)

#!/usr/bin/env python3
"""The policy a cluster operator expects of sessiond's Kubernetes objects, checked on the output of
`kubectl kustomize` (README: "Kubernetes"; run by scripts/check-kubernetes.sh in make test).

    scripts/kubernetes_policy.py BUILT.yaml            exit 1 naming every point that is broken
    scripts/kubernetes_policy.py --self-test BUILT.yaml  breaks each point in turn on a copy and
                                                         exits 1 unless the policy notices each

A failure, not a warning: each check says what is wrong and in which object.
"""
import copy
import re
import sys

import yaml

# BENCHMARKS.md: sessiond's resident memory under load is 37-41 MiB, flat over a 10-minute soak.
MEASURED_RSS_MIB = 41
# The in-flight bound of the drain (README: "Shutting down: the drain"): 30 s after the delay.
IN_FLIGHT_GRACE_SECONDS = 30
REDIS_MODES = ("SESSIOND_SENTINELS", "SESSIOND_REDIS_CLUSTER")


def quantity_mib(text):
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "K": 1000 / 1048576, "M": 1e6 / 1048576, "G": 1e9 / 1048576}
    match = re.fullmatch(r"([0-9.]+)([KMG]i?)?", str(text))
    if not match:
        raise ValueError(f"unreadable memory quantity {text!r}")
    return float(match.group(1)) * units.get(match.group(2) or "", 1 / 1048576)


def find(objects, kind, name=None):
    return [o for o in objects if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]


def selects(selector, labels):
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def check(objects):
    """Returns the broken points, each 'point: what is wrong'."""
    problems = []

    def require(condition, point, message):
        if not condition:
            problems.append(f"{point}: {message}")

    deployments = [d for d in find(objects, "Deployment")
                   if any(c["name"] == "sessiond" for c in d["spec"]["template"]["spec"]["containers"])]
    if len(deployments) != 1:
        return [f"deployment: expected one Deployment running sessiond, found {len(deployments)}"]
    deployment = deployments[0]
    name = deployment["metadata"]["name"]
    pod = deployment["spec"]["template"]["spec"]
    pod_labels = deployment["spec"]["template"]["metadata"].get("labels", {})
    container = next(c for c in pod["containers"] if c["name"] == "sessiond")
    pod_security = pod.get("securityContext", {})
    security = container.get("securityContext", {})

    # Probes: readiness on Redis, liveness and start-up never on Redis.
    def probe_path(probe):
        return (container.get(probe) or {}).get("httpGet", {}).get("path")
    require(probe_path("readinessProbe") == "/readyz", "probes", f"readiness must ask /readyz, not {probe_path('readinessProbe')}")
    require(probe_path("livenessProbe") == "/healthz", "probes",
            f"liveness must ask /healthz (never Redis: an outage would restart every pod), not {probe_path('livenessProbe')}")
    require(probe_path("startupProbe") == "/healthz", "probes", f"a start-up probe on /healthz is missing (got {probe_path('startupProbe')})")

    # Resources from the measured figures.
    resources = container.get("resources", {})
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            require(resource in resources.get(kind, {}), "resources", f"{kind}.{resource} is not set")
    if "memory" in resources.get("requests", {}) and "memory" in resources.get("limits", {}):
        request, limit = quantity_mib(resources["requests"]["memory"]), quantity_mib(resources["limits"]["memory"])
        require(request >= MEASURED_RSS_MIB, "resources", f"a memory request of {request:g} MiB is below the {MEASURED_RSS_MIB} MiB measured under load")
        require(limit >= 2 * MEASURED_RSS_MIB, "resources", f"a memory limit of {limit:g} MiB leaves no headroom over the {MEASURED_RSS_MIB} MiB measured")

    # Security context.
    def setting(key):
        return security.get(key, pod_security.get(key))
    require(setting("runAsNonRoot") is True, "security", "runAsNonRoot is not true")
    user = setting("runAsUser")
    require(isinstance(user, int) and user > 0, "security", f"runAsUser must be a non-zero number (the image's user is a name), not {user!r}")
    require(security.get("readOnlyRootFilesystem") is True, "security", "readOnlyRootFilesystem is not true")
    require(security.get("allowPrivilegeEscalation") is False, "security", "allowPrivilegeEscalation is not false")
    require("ALL" in security.get("capabilities", {}).get("drop", []), "security", "capabilities do not drop ALL")
    require(setting("seccompProfile") == {"type": "RuntimeDefault"}, "security", "seccompProfile is not RuntimeDefault")

    # Spread over nodes.
    spread = [c for c in pod.get("topologySpreadConstraints", [])
              if c.get("topologyKey") == "kubernetes.io/hostname" and selects(c.get("labelSelector", {}).get("matchLabels"), pod_labels)]
    anti = [t for t in pod.get("affinity", {}).get("podAntiAffinity", {}).get("preferredDuringSchedulingIgnoredDuringExecution", [])
            if t.get("podAffinityTerm", {}).get("topologyKey") == "kubernetes.io/hostname"]
    require(spread or anti, "spread", "no topology spread or anti-affinity over kubernetes.io/hostname for the sessiond pods")

    # Scaling and disruptions: one eviction at a time, never all.
    autoscalers = [h for h in find(objects, "HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == name]
    require(len(autoscalers) == 1, "autoscaler", f"expected one HorizontalPodAutoscaler for Deployment {name}")
    minimum = 1
    if autoscalers:
        spec = autoscalers[0]["spec"]
        minimum = spec.get("minReplicas", 1)
        require(minimum >= 2, "autoscaler", f"minReplicas {minimum} leaves no instance during a disruption")
        require(any(m.get("resource", {}).get("name") == "cpu" for m in spec.get("metrics", [])), "autoscaler", "does not scale on CPU")
        require("replicas" not in deployment["spec"], "autoscaler", "the Deployment sets replicas, which every apply would reset under the autoscaler")
    budgets = [b for b in find(objects, "PodDisruptionBudget") if selects(b["spec"].get("selector", {}).get("matchLabels"), pod_labels)]
    require(len(budgets) == 1, "disruption budget", "expected one PodDisruptionBudget selecting the sessiond pods")
    if budgets:
        spec = budgets[0]["spec"]
        if "maxUnavailable" in spec:
            unavailable = spec["maxUnavailable"]
            require(isinstance(unavailable, int) and 1 <= unavailable < minimum, "disruption budget",
                    f"maxUnavailable {unavailable!r} must allow one eviction but never all {minimum}")
        else:
            available = spec.get("minAvailable")
            require(isinstance(available, int) and 1 <= available <= minimum - 1, "disruption budget",
                    f"minAvailable {available!r} must allow one eviction but never all {minimum}")

    # Settings from a ConfigMap, the API keys from a Secret, exactly one Redis mode.
    settings = {}
    for source in container.get("envFrom", []):
        reference = source.get("configMapRef", {}).get("name")
        maps = find(objects, "ConfigMap", reference)
        require(bool(maps), "settings", f"envFrom names ConfigMap {reference!r}, which is not in the output")
        for config_map in maps:
            settings.update(config_map.get("data", {}))
    require(bool(settings), "settings", "sessiond's settings do not come from a ConfigMap")
    for variable in container.get("env", []):
        settings[variable["name"]] = variable.get("value", variable.get("valueFrom"))
    keys = next((v for v in container.get("env", []) if v["name"] == "SESSIOND_API_KEYS"), {})
    require("secretKeyRef" in keys.get("valueFrom", {}), "secrets", "SESSIOND_API_KEYS must come from a Secret reference")
    require("SESSIOND_API_KEYS" not in {k for m in find(objects, "ConfigMap") for k in m.get("data", {})}, "secrets",
            "API keys sit in a ConfigMap")
    modes = [mode for mode in REDIS_MODES if settings.get(mode)]
    require(len(modes) == 1, "redis mode", f"exactly one of {', '.join(REDIS_MODES)} must be set, found {modes or 'none'}")

    # The drain fits in the grace period.
    delay = int(settings.get("SESSIOND_SHUTDOWN_DELAY", 5))
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    require(delay + pre_stop + IN_FLIGHT_GRACE_SECONDS <= grace, "shutdown",
            f"a shutdown delay of {delay} s (+{pre_stop} s preStop) and {IN_FLIGHT_GRACE_SECONDS} s for requests in flight "
            f"do not fit in terminationGracePeriodSeconds {grace}")

    # The image pinned by tag (or digest).
    image = container.get("image", "")
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    require("@sha256:" in image or (tag and tag != "latest"), "image", f"{image!r} is not pinned by tag")

    # A ServiceAccount of its own, without API access.
    account_name = pod.get("serviceAccountName")
    accounts = find(objects, "ServiceAccount", account_name) if account_name else []
    require(bool(accounts), "service account", f"the pods run as {account_name or 'the default account'}, not an account of their own")
    require(pod.get("automountServiceAccountToken") is False or any(a.get("automountServiceAccountToken") is False for a in accounts),
            "service account", "the API token is mounted")
    for binding in find(objects, "RoleBinding") + find(objects, "ClusterRoleBinding"):
        require(not any(s.get("name") == account_name for s in binding.get("subjects", [])), "service account",
                f"{binding['kind']} {binding['metadata']['name']} gives it API access")

    # A Service in front of it.
    services = [s for s in find(objects, "Service") if selects(s["spec"].get("selector"), pod_labels)]
    require(bool(services), "service", "no Service selects the sessiond pods")
    return problems


def sessiond(objects):
    deployment = next(d for d in find(objects, "Deployment") if d["metadata"]["name"] == "sessiond")
    return deployment, next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "sessiond")


def settings_map(objects):
    return next(m for m in find(objects, "ConfigMap") if m["metadata"]["name"].startswith("sessiond-settings"))


# Each point broken on its own: (the point the policy must name, what breaks it).
def _readiness_on_healthz(o): sessiond(o)[1]["readinessProbe"]["httpGet"]["path"] = "/healthz"
def _liveness_on_redis(o): sessiond(o)[1]["livenessProbe"]["httpGet"]["path"] = "/readyz"
def _no_startup_probe(o): del sessiond(o)[1]["startupProbe"]
def _no_memory_limit(o): del sessiond(o)[1]["resources"]["limits"]["memory"]
def _small_memory_request(o): sessiond(o)[1]["resources"]["requests"]["memory"] = "16Mi"
def _user_by_name(o): sessiond(o)[0]["spec"]["template"]["spec"]["securityContext"]["runAsUser"] = "sessiond"
def _runs_as_root(o): sessiond(o)[1]["securityContext"]["runAsNonRoot"] = False; sessiond(o)[0]["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] = False
def _writable_root(o): sessiond(o)[1]["securityContext"]["readOnlyRootFilesystem"] = False
def _escalation(o): del sessiond(o)[1]["securityContext"]["allowPrivilegeEscalation"]
def _capabilities(o): sessiond(o)[1]["securityContext"]["capabilities"]["drop"] = ["NET_RAW"]
def _no_seccomp(o): del sessiond(o)[0]["spec"]["template"]["spec"]["securityContext"]["seccompProfile"]
def _no_spread(o): del sessiond(o)[0]["spec"]["template"]["spec"]["topologySpreadConstraints"]
def _budget_allows_all(o): find(o, "PodDisruptionBudget")[0]["spec"]["maxUnavailable"] = 3
def _budget_allows_none(o): find(o, "PodDisruptionBudget")[0]["spec"]["maxUnavailable"] = 0
def _one_replica(o): find(o, "HorizontalPodAutoscaler")[0]["spec"]["minReplicas"] = 1
def _two_redis_modes(o): settings_map(o)["data"]["SESSIOND_SENTINELS"] = "a:26379"; settings_map(o)["data"]["SESSIOND_REDIS_CLUSTER"] = "b:6379"
def _no_redis_mode(o): [settings_map(o)["data"].pop(mode, None) for mode in REDIS_MODES]
def _long_delay(o): settings_map(o)["data"]["SESSIOND_SHUTDOWN_DELAY"] = "15"
def _latest_image(o): sessiond(o)[1]["image"] = "sessiond:latest"
def _untagged_image(o): sessiond(o)[1]["image"] = "registry.example.com:5000/sessiond"
def _literal_keys(o):
    keys = next(v for v in sessiond(o)[1]["env"] if v["name"] == "SESSIOND_API_KEYS")
    del keys["valueFrom"]
    keys["value"] = "literal-key-0123456789"
def _token_mounted(o): sessiond(o)[0]["spec"]["template"]["spec"]["automountServiceAccountToken"] = True; find(o, "ServiceAccount")[0]["automountServiceAccountToken"] = True
def _role_bound(o): o.append({"kind": "ClusterRoleBinding", "metadata": {"name": "sessiond-admin"}, "subjects": [{"kind": "ServiceAccount", "name": "sessiond"}]})


MUTATIONS = [
    ("probes", _readiness_on_healthz), ("probes", _liveness_on_redis), ("probes", _no_startup_probe),
    ("resources", _no_memory_limit), ("resources", _small_memory_request),
    ("security", _user_by_name), ("security", _runs_as_root), ("security", _writable_root), ("security", _escalation),
    ("security", _capabilities), ("security", _no_seccomp), ("spread", _no_spread),
    ("disruption budget", _budget_allows_all), ("disruption budget", _budget_allows_none), ("autoscaler", _one_replica),
    ("redis mode", _two_redis_modes), ("redis mode", _no_redis_mode), ("shutdown", _long_delay),
    ("image", _latest_image), ("image", _untagged_image), ("secrets", _literal_keys),
    ("service account", _token_mounted), ("service account", _role_bound),
]


def main(arguments):
    self_test = arguments[:1] == ["--self-test"]
    path = arguments[-1]
    with open(path) as file:
        objects = [o for o in yaml.safe_load_all(file) if o]
    problems = check(objects)
    if problems:
        print(f"{path}: the Kubernetes policy does not hold:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    if not self_test:
        print(f"{path}: the Kubernetes policy holds ({len(objects)} objects)")
        return 0
    missed = []
    for point, mutate in MUTATIONS:
        broken = copy.deepcopy(objects)
        mutate(broken)
        if not any(p.startswith(point + ":") for p in check(broken)):
            missed.append(f"{mutate.__name__.strip('_')} was not reported as a broken '{point}'")
    if missed:
        print(f"{path}: the policy misses broken points:", *missed, sep="\n  ", file=sys.stderr)
        return 1
    print(f"{path}: the policy reports each of {len(MUTATIONS)} broken points")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

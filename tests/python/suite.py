#!/usr/bin/env python3
"""The official Kubernetes Python client (`kubernetes` on PyPI) against a running sgsim cluster
(`sgsim cluster up --kubeconfig F`): create, list, watch, read logs, events, patch, delete.

Usage: tests/python/suite.py KUBECONFIG. Exit status 0 when every check passed.
Driven by harness/cli/tests/clients.rs in `cargo test --workspace`.
"""

import json
import random
import string
import sys
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

failures = 0


def ok(name):
    print(f"ok    {name}", flush=True)


def fail(name, detail):
    global failures
    failures += 1
    print(f"FAIL  {name}\n      {detail}", flush=True)


def check(name, cond, detail=""):
    if cond:
        ok(name)
    else:
        fail(name, detail)
    return cond


def main(kubeconfig):
    api_client = config.new_client_from_config(config_file=kubeconfig)
    v1 = client.CoreV1Api(api_client)
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=8))
    ns = f"python-suite-{suffix}"
    try:
        run(api_client, v1, ns)
    finally:
        try:
            v1.delete_namespace(ns)
        except Exception:  # best effort: the cluster goes away with the test anyway
            pass
    return failures


def run(api_client, v1, ns):
    version = client.VersionApi(api_client).get_code()
    check("version", version.git_version.startswith("v1."), repr(version))

    v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    names = [n.metadata.name for n in v1.list_namespace().items]
    check("create/list namespace", ns in names, names)

    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="settings"), data={"greeting": "hello"})
    v1.create_namespaced_config_map(ns, cm)
    check("configmap round trip", v1.read_namespaced_config_map("settings", ns).data == {"greeting": "hello"})

    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="ticker", labels={"app": "ticker", "suite": "python"}),
        spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[
                client.V1Container(
                    name="main",
                    image="busybox",
                    command=["sh", "-c", "echo started; i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"],
                    env=[client.V1EnvVar(name="GREETING", value_from=client.V1EnvVarSource(
                        config_map_key_ref=client.V1ConfigMapKeySelector(name="settings", key="greeting")))],
                )
            ],
        ),
    )
    created = v1.create_namespaced_pod(ns, pod)
    check("create pod", created.metadata.uid and created.status.phase == "Pending", created.status)

    try:
        v1.create_namespaced_pod(ns, pod)
        fail("create duplicate pod", "no error")
    except ApiException as e:
        body = json.loads(e.body)
        check("create duplicate pod (409 AlreadyExists)", e.status == 409 and body.get("reason") == "AlreadyExists"
              and body.get("message") == 'pods "ticker" already exists', e.body)

    listed = v1.list_namespaced_pod(ns, label_selector="app=ticker,suite=python")
    check("list pods (label selector)", [p.metadata.name for p in listed.items] == ["ticker"], listed.items)
    none = v1.list_namespaced_pod(ns, label_selector="app=other")
    check("list pods (no match)", none.items == [], none.items)
    by_field = v1.list_namespaced_pod(ns, field_selector="metadata.name=ticker")
    check("list pods (field selector)", len(by_field.items) == 1, by_field.items)

    # Watch from the list's resourceVersion until the pod runs with a ready container.
    w = watch.Watch()
    running = None
    seen_types = set()
    deadline = time.time() + 120
    for ev in w.stream(v1.list_namespaced_pod, ns, resource_version=listed.metadata.resource_version,
                       field_selector="metadata.name=ticker", timeout_seconds=120):
        seen_types.add(ev["type"])
        p = ev["object"]
        statuses = p.status.container_statuses or []
        if p.status.phase == "Running" and statuses and all(s.ready for s in statuses):
            running = p
            w.stop()
        elif p.status.phase in ("Failed", "Succeeded") or time.time() > deadline:
            w.stop()
    if check("watch until Running", running is not None, f"events seen: {seen_types}"):
        check("watch event types", "MODIFIED" in seen_types, seen_types)
        check("pod IP and node", bool(running.status.pod_ip) and bool(running.spec.node_name), running.status)
        conds = {c.type: c.status for c in running.status.conditions or []}
        check("pod conditions", all(conds.get(t) == "True" for t in
                                    ("PodScheduled", "Initialized", "ContainersReady", "Ready")), conds)
    else:
        return

    time.sleep(3)
    logs = v1.read_namespaced_pod_log("ticker", ns, container="main")
    check("read logs", logs.startswith("started\ntick 0\n"), repr(logs[:200]))
    tail = v1.read_namespaced_pod_log("ticker", ns, tail_lines=1)
    check("read logs (tail_lines=1)", tail.count("\n") == 1 and tail.startswith("tick "), repr(tail))
    stamped = v1.read_namespaced_pod_log("ticker", ns, timestamps=True, tail_lines=1)
    check("read logs (timestamps)", stamped[:4].isdigit() and "Z tick " in stamped, repr(stamped))
    # Follow: stream lines until a few have arrived.
    stream = v1.read_namespaced_pod_log("ticker", ns, follow=True, _preload_content=False)
    got = []
    try:
        for line in stream.stream():
            got.extend(l for l in line.decode().splitlines() if l)
            if len(got) >= 4:
                break
    finally:
        stream.release_conn()
    check("read logs (follow)", len(got) >= 4 and got[0] == "started", got)

    events = v1.list_namespaced_event(ns, field_selector="involvedObject.name=ticker")
    reasons = [e.reason for e in events.items]
    check("events", all(r in reasons for r in ("Scheduled", "Pulling", "Created", "Started")), reasons)
    msgs = [e.message for e in events.items]
    check("event message", f"Successfully assigned {ns}/ticker to {running.spec.node_name}" in msgs, msgs)

    ev1 = client.EventsV1Api(api_client)
    new_events = ev1.list_namespaced_event(ns, field_selector="regarding.name=ticker")
    check("events.k8s.io/v1", any(e.reason == "Started" and e.regarding.kind == "Pod" for e in new_events.items),
          [(e.reason, e.regarding) for e in new_events.items])

    patched = v1.patch_namespaced_pod("ticker", ns, {"metadata": {"labels": {"tier": "front"}}})
    check("patch labels", patched.metadata.labels.get("tier") == "front", patched.metadata.labels)

    try:
        v1.read_namespaced_pod("missing", ns)
        fail("read missing pod", "no error")
    except ApiException as e:
        body = json.loads(e.body)
        check("read missing pod (404 NotFound)", e.status == 404 and body.get("reason") == "NotFound"
              and body.get("message") == 'pods "missing" not found', e.body)

    # Delete and watch it go.
    rv = v1.read_namespaced_pod("ticker", ns).metadata.resource_version
    v1.delete_namespaced_pod("ticker", ns)
    deleted = False
    for ev in w.stream(v1.list_namespaced_pod, ns, resource_version=rv, timeout_seconds=60):
        if ev["type"] == "DELETED" and ev["object"].metadata.name == "ticker":
            deleted = True
            w.stop()
    check("watch DELETED", deleted)
    check("list after delete", v1.list_namespaced_pod(ns).items == [])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: suite.py KUBECONFIG", file=sys.stderr)
        sys.exit(2)
    n = main(sys.argv[1])
    print("python suite: all checks passed" if n == 0 else f"python suite: {n} check(s) failed")
    sys.exit(1 if n else 0)

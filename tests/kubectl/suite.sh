#!/usr/bin/env bash
# kubectl against a running sgsim cluster (`sgsim cluster up --kubeconfig F`): the commands a
# customer uses to look at a step-group pod. Usage: tests/kubectl/suite.sh KUBECONFIG
# Exit status 0 when every check passed; each check prints `ok`/`FAIL` with what it saw.
# Driven by harness/cli/tests/clients.rs in `cargo test --workspace`.
set -uo pipefail

kc="${1:?usage: suite.sh KUBECONFIG}"
kubectl_bin="${KUBECTL:-kubectl}"
work="$(mktemp -d "${TMPDIR:-/tmp}/sgsim-kubectl-suite.XXXXXX")"
ns="kubectl-suite-$$-$RANDOM"
failures=0

k() { HOME="$work" "$kubectl_bin" --kubeconfig "$kc" --cache-dir "$work/cache" "$@"; }
cleanup() {
  k delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

ok() { printf 'ok    %s\n' "$1"; }
fail() { printf 'FAIL  %s\n%s\n' "$1" "${2:-}" | sed 's/^/      /;1s/^      //'; failures=$((failures + 1)); }
# expect NAME OUTPUT PATTERN...: every extended regex PATTERN matches OUTPUT.
expect() {
  local name="$1" out="$2"; shift 2
  local p
  for p in "$@"; do
    if ! grep -Eq -- "$p" <<<"$out"; then
      fail "$name" "missing /$p/ in:
$out"
      return
    fi
  done
  ok "$name"
}
# run NAME CMD...: the command must succeed; its stdout+stderr is in $out.
run() {
  local name="$1"; shift
  if out="$("$@" 2>&1)"; then return 0; fi
  fail "$name" "command failed: $*
$out"
  return 1
}

cat >"$work/pod.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: $ns
  labels:
    app: web
spec:
  restartPolicy: Never
  containers:
    - name: main
      image: busybox
      command: ["sh", "-c", "i=0; while true; do echo tick \$i; i=\$((i+1)); sleep 1; done"]
      resources:
        requests: {cpu: 10m, memory: 16Mi}
        limits: {cpu: 100m, memory: 64Mi}
YAML

run "version" k version && expect "version" "$out" "Server Version: v1\."
# kubectl's typed `create` commands send protobuf bodies.
run "create namespace" k create namespace "$ns" && expect "create namespace" "$out" "^namespace/$ns created$"
run "get namespace" k get namespace "$ns" && expect "get namespace" "$out" "^$ns +Active +[0-9]+s$"
run "create configmap" k -n "$ns" create configmap settings --from-literal=greeting=hello &&
  expect "create configmap" "$out" "^configmap/settings created$"
run "create secret" k -n "$ns" create secret generic creds --from-literal=token=s3cr3t &&
  expect "create secret" "$out" "^secret/creds created$"
run "create serviceaccount" k -n "$ns" create serviceaccount builder &&
  expect "create serviceaccount" "$out" "^serviceaccount/builder created$"
run "created objects" k -n "$ns" get configmap/settings secret/creds serviceaccount/builder \
  -o 'jsonpath={.items[0].data.greeting}/{.items[1].data.token}/{.items[1].type}/{.items[2].metadata.name}' &&
  expect "created objects" "$out" "^hello/czNjcjN0/Opaque/builder$"

# kubectl explain reads the OpenAPI v3 schemas.
run "explain pod.spec" k explain pod.spec &&
  expect "explain pod.spec" "$out" "^KIND: +Pod$" "^FIELD: +spec <PodSpec>" "^  containers\s+<\[\]Container> -required-"
run "explain priorityclass" k explain priorityclass.value &&
  expect "explain priorityclass.value" "$out" "^GROUP: +scheduling.k8s.io$" "^FIELD: +value <integer>"

# Default client-side validation (no --validate=false).
run "apply -f" k apply -f "$work/pod.yaml" && expect "apply -f" "$out" "^pod/web created$"
run "wait Ready" k -n "$ns" wait --for=condition=Ready pod/web --timeout=120s &&
  expect "wait Ready" "$out" "pod/web condition met"

run "get pods" k -n "$ns" get pods &&
  expect "get pods (READY STATUS RESTARTS AGE)" "$out" \
    "^NAME +READY +STATUS +RESTARTS +AGE$" "^web +1/1 +Running +0 +[0-9]+s$"
run "get -o wide" k -n "$ns" get pod web -o wide &&
  expect "get -o wide" "$out" "IP +NODE +NOMINATED NODE +READINESS GATES" \
    "^web +1/1 +Running +0 +[0-9]+s +[0-9]+(\.[0-9]+){3} +node-[0-9]+ "
run "get -o yaml" k -n "$ns" get pod web -o yaml &&
  expect "get -o yaml" "$out" "^kind: Pod$" "^  phase: Running$" "^  uid: " "^  nodeName: node-"
run "get -o jsonpath" k -n "$ns" get pod web -o 'jsonpath={.status.containerStatuses[0].ready}' &&
  expect "get -o jsonpath" "$out" "^true$"
run "describe pod" k -n "$ns" describe pod web &&
  expect "describe pod" "$out" "^Name: +web$" "^Status: +Running$" "^Events:" \
    "Scheduled .*Successfully assigned $ns/web to node-" "Started .*Started container main"

# logs -f streams until interrupted: let it run, then look at what arrived.
timeout 5 env HOME="$work" "$kubectl_bin" --kubeconfig "$kc" -n "$ns" logs -f web >"$work/follow.log" 2>&1
lines="$(grep -c '^tick [0-9]*$' "$work/follow.log")"
if [ "$lines" -ge 3 ]; then ok "logs -f ($lines lines)"; else fail "logs -f" "$(cat "$work/follow.log")"; fi
run "logs --tail" k -n "$ns" logs web --tail=1 && expect "logs --tail=1" "$out" "^tick [0-9]+$"
[ "$(wc -l <<<"$out")" -eq 1 ] || fail "logs --tail=1 line count" "$out"

run "get events" k -n "$ns" get events &&
  expect "get events" "$out" "LAST SEEN +TYPE +REASON +OBJECT +MESSAGE" \
    "Normal +Scheduled +pod/web +Successfully assigned" "Normal +Started +pod/web +Started container main"
run "get events (field selector)" k -n "$ns" get events --field-selector involvedObject.name=web,reason=Pulling &&
  expect "get events (field selector)" "$out" "Pulling image \"busybox\""

run "label" k -n "$ns" label pod web tier=front && expect "label" "$out" "pod/web labeled"
run "get -l" k -n "$ns" get pods -l tier=front,app=web --show-labels &&
  expect "get -l (label selector)" "$out" "^web .*app=web,tier=front$"
run "get -l (no match)" k -n "$ns" get pods -l tier=back &&
  expect "get -l (no match)" "$out" "No resources found in $ns namespace"
run "annotate" k -n "$ns" annotate pod web sgsim.dev/note=suite && expect "annotate" "$out" "pod/web annotated"
run "annotation" k -n "$ns" get pod web -o 'jsonpath={.metadata.annotations.sgsim\.dev/note}' &&
  expect "annotation value" "$out" "^suite$"

# apply again with a changed label: a three-way strategic merge patch.
sed -i 's/^    app: web$/    app: web\n    rev: "2"/' "$work/pod.yaml"
run "apply (configured)" k apply -f "$work/pod.yaml" && expect "apply (configured)" "$out" "^pod/web configured$"
run "label after apply" k -n "$ns" get pod web -o 'jsonpath={.metadata.labels.rev}/{.metadata.labels.tier}' &&
  expect "apply kept kubectl label" "$out" "^2/front$"

run "delete" k -n "$ns" delete pod web --wait=true --timeout=60s && expect "delete" "$out" 'pod "web" deleted'
run "get after delete" k -n "$ns" get pods && expect "get after delete" "$out" "No resources found in $ns namespace"
if out="$(k -n "$ns" get pod web 2>&1)"; then
  fail "get deleted pod" "$out"
else
  expect "get deleted pod (NotFound)" "$out" 'pods "web" not found'
fi

# A failure mode as kubectl shows it: env from a Secret key that does not exist.
cat >"$work/bad-env.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata:
  name: bad-env
  namespace: $ns
spec:
  restartPolicy: Never
  containers:
    - name: main
      image: busybox
      command: ["sleep", "3600"]
      env:
        - name: TOKEN
          valueFrom:
            secretKeyRef: {name: creds, key: missing}
YAML
run "apply bad-env" k apply -f "$work/bad-env.yaml" && expect "apply bad-env" "$out" "^pod/bad-env created$"
seen=""
for _ in $(seq 1 60); do
  seen="$(k -n "$ns" get pod bad-env 2>&1)"
  grep -Eq "^bad-env +0/1 +CreateContainerConfigError +0 +" <<<"$seen" && break
  sleep 1
done
expect "get pods (CreateContainerConfigError)" "$seen" "^bad-env +0/1 +CreateContainerConfigError +0 +[0-9]+s$"
run "events (missing key)" k -n "$ns" get events --field-selector involvedObject.name=bad-env,type=Warning &&
  expect "events (missing key)" "$out" "Warning +Failed +pod/bad-env +Error: couldn't find key missing in Secret $ns/creds"
k -n "$ns" delete pod bad-env --wait=false >/dev/null 2>&1

# A step-group pod as sgsim renders it for a scenario (setup-addon init container, a step
# container, lite-engine) with its `<pod>-secret` (`sgsim render --with-secrets`): applied as is, it
# runs with READY 2/2. Needs the sgsim binary ($SGSIM).
sgsim_bin="${SGSIM:-$(command -v sgsim || true)}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
if [ -n "$sgsim_bin" ] && [ -x "$sgsim_bin" ]; then
  if "$sgsim_bin" render --with-secrets "$repo/scenarios/run-single" >"$work/scenario-pod.yaml" 2>"$work/render.err"; then
    pod="$(sed -n '/^kind: Pod$/,$ s/^  name: //p' "$work/scenario-pod.yaml" | head -n 1)"
    pns="$(sed -n '/^kind: Pod$/,$ s/^  namespace: //p' "$work/scenario-pod.yaml" | head -n 1)"
    k create namespace "$pns" >/dev/null 2>&1 || true
    # With the lite-engine's Secret, which the product creates before the pod (its env reads it).
    run "apply scenario pod" k apply -f "$work/scenario-pod.yaml" &&
      expect "apply scenario pod" "$out" "^secret/$pod-secret created$" "^pod/$pod created$"
    run "wait scenario pod" k -n "$pns" wait --for=condition=Ready "pod/$pod" --timeout=120s &&
      expect "wait scenario pod Ready" "$out" "condition met"
    run "get scenario pod" k -n "$pns" get pods &&
      expect "get pods (scenario pod)" "$out" "^NAME +READY +STATUS +RESTARTS +AGE$" "^$pod +2/2 +Running +0 +[0-9]+s$"
    run "describe scenario pod" k -n "$pns" describe pod "$pod" &&
      expect "describe scenario pod" "$out" "^Init Containers:" "^  setup-addon:" "Reason: +Completed" \
        "^  lite-engine:" "Started container lite-engine"
    run "delete scenario pod" k -n "$pns" delete pod "$pod" --wait=true --timeout=60s &&
      expect "delete scenario pod" "$out" "pod \"$pod\" deleted"
  else
    fail "sgsim render" "$(cat "$work/render.err")"
  fi
else
  echo "note  scenario pod checks skipped: no sgsim binary (set SGSIM)"
fi

if [ "$failures" -gt 0 ]; then
  echo "kubectl suite: $failures check(s) failed"
  exit 1
fi
echo "kubectl suite: all checks passed"

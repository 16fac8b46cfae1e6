#!/usr/bin/env bash
# Chart checks run by `make chart-test` (tools are built and passed in by the Makefile):
#   1. helm lint --strict (default values and every example in deploy/values-*.yaml), and every
#      value documented in values.yaml with the chart README's table current (values-doc.py)
#   2. helm-unittest suites in charts/mycel/tests (one per template)
#   3. kubeconform -strict against Kubernetes $K8S_VERSION for the rendered default values and
#      every deploy/values-*.yaml
# Writes one line per step, "NAME passed N failed N", to $RESULTS (counted into the last line of
# `make test` by tests/run.mjs) and exits non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${HELM:?}" "${HELM_UNITTEST:?}" "${KUBECONFORM:?}" "${K8S_SCHEMAS:?}" "${K8S_VERSION:?}" "${RESULTS:?}"
chart=charts/mycel
mkdir -p "$(dirname "$RESULTS")"
: >"$RESULTS"
examples=(deploy/values-*.yaml)
failed_any=0
record() { # name passed failed
  echo "$1 passed $2 failed $3" >>"$RESULTS"
  echo "chart-test: $1: $2 passed, $3 failed"
  [[ $3 -eq 0 ]] || failed_any=1
}

# 1. lint
pass=0 fail=0
for values in "" "${examples[@]}"; do
  if "$HELM" lint --strict --kube-version "$K8S_VERSION" $chart ${values:+-f "$values"} >/tmp/chart-lint.$$ 2>&1; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1)); echo "helm lint ${values:-(default values)} failed:"; cat /tmp/chart-lint.$$
  fi
done
rm -f /tmp/chart-lint.$$
# Every value documented, and the README's values table generated from those comments is current.
if python3 charts/values-doc.py --check; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
record helm-lint $pass $fail

# 2. helm-unittest: its summary line is "Tests:  N failed, M passed, K total" (or without failed).
out=$("$HELM_UNITTEST" --color=false $chart 2>&1); rc=$?
echo "$out" | grep -v '^\s*$' | grep -E 'PASS|FAIL|Error|error|Charts:|Test Suites:|Tests:|Snapshot:|^\s+-' | head -200
tests_line=$(echo "$out" | grep -E '^Tests:' | tail -1)
pass=$(echo "$tests_line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || true)
fail=$(echo "$tests_line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || true)
pass=${pass:-0} fail=${fail:-0}
if [[ $rc -ne 0 && $fail -eq 0 ]]; then
  echo "$out" | tail -30
  fail=1
fi
record helm-unittest "$pass" "$fail"

# 3. kubeconform (ServiceMonitor is a CRD without a bundled schema; it is checked by the suites).
pass=0 fail=0
schema="$K8S_SCHEMAS/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
for values in "" "${examples[@]}"; do
  label=${values:-default values}
  if ! "$HELM" template mycel $chart --namespace mycel --kube-version "$K8S_VERSION" ${values:+-f "$values"} >/tmp/chart-render.$$ 2>&1; then
    fail=$((fail + 1)); echo "render $label failed:"; cat /tmp/chart-render.$$; continue
  fi
  if report=$("$KUBECONFORM" -strict -summary -kubernetes-version "$K8S_VERSION" -schema-location "$schema" \
      -skip ServiceMonitor </tmp/chart-render.$$ 2>&1); then
    pass=$((pass + 1)); echo "kubeconform $label: $report"
  else
    fail=$((fail + 1)); echo "kubeconform $label failed:"; echo "$report"
  fi
done
rm -f /tmp/chart-render.$$
record kubeconform $pass $fail
exit $failed_any

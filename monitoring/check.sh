#!/usr/bin/env bash
# Checks the monitoring files with the real tools (Debian's prometheus and
# prometheus-alertmanager packages): the rules load (promtool check rules),
# every alert fires and stays quiet as its unit tests say (promtool test
# rules), the Alertmanager example loads and routes each severity to the
# receiver it documents, and inhibits the database outage's symptoms.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
for tool in promtool amtool; do
  command -v "$tool" >/dev/null || {
    echo "$tool is missing: apt-get install prometheus prometheus-alertmanager" >&2
    exit 5
  }
done
promtool --version | head -1
promtool check rules "$here/prometheus/mogothrow77.rules.yml"
promtool test rules "$here"/prometheus/tests/*.test.yml

config=$here/alertmanager/alertmanager.example.yml
amtool --version | head -1
amtool check-config "$config"
route() {
  local want=$1; shift
  amtool config routes test --config.file="$config" --verify.receivers="$want" "$@" 2>/dev/null >/dev/null \
    || { echo "alertmanager example: $* is not routed to $want" >&2; return 1; }
  echo "routed to $want: $*"
}
route pager alertname=Mogothrow77DatabaseUnavailable severity=critical job=mogothrow77
route pager alertname=Mogothrow77AvailabilityBudgetBurn severity=critical slo=availability job=mogothrow77
route tickets alertname=Mogothrow77JobBacklog severity=warning job=mogothrow77
route tickets alertname=Mogothrow77CertificateExpiresSoon severity=warning job=mogothrow77 instance=a:8443
# Every alert the rules define is routed by its severity.
grep -A12 -- '- alert: ' "$here/prometheus/mogothrow77.rules.yml" |
  awk '/- alert: /{name=$3} /severity: /{print name, $2}' |
  while read -r name severity; do
    case $severity in
      critical) route pager "alertname=$name" "severity=$severity" job=mogothrow77 ;;
      warning) route tickets "alertname=$name" "severity=$severity" job=mogothrow77 ;;
      *) echo "$name: unknown severity $severity" >&2; exit 1 ;;
    esac
  done
echo "monitoring files: all checks passed"

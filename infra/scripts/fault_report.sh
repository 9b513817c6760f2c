#!/usr/bin/env bash
# Runs the fault-injection suite (infra/tributary/tests/faults.rs, and the
# scale-out tests' faults in scale_out.rs) and writes
# its report table to docs/FAULTS.md. Every row comes from the suite's own
# check against the source; a test that finds a loss or a duplicate fails,
# and so does this script.
#   infra/scripts/fault_report.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
infra/scripts/prereqs.sh >/dev/null
rows="$(mktemp -d)"
trap 'rm -rf "$rows"' EXIT
TRIBUTARY_FAULT_REPORT="$rows" cargo test --locked -p tributary --test faults --test scale_out -- --test-threads 2
{
    echo "# Fault-injection report"
    echo
    echo "Written by \`infra/scripts/fault_report.sh\` from a run of the fault-injection"
    echo "suite (\`infra/tributary/tests/faults.rs\` and \`scale_out.rs\`, part of the README's test command)"
    echo "at commit $(git rev-parse --short HEAD), $(date -u +%Y-%m-%d), on $(nproc) cores."
    echo "Do not edit by hand: rerun the script."
    echo
    echo "Each run: \`tributary up\` with the sandbox source (2 companies, 9 data"
    echo "types, up to 80 records each, some deleted by the source), the local broker,"
    echo "a PostgreSQL store and the search index; one fault in mid-sync; then the"
    echo "store is compared with the source record for record and field for field,"
    echo "every row's apply counter is checked (an event applied twice would show),"
    echo "and the index count is compared. The scale-out rows run several processes"
    echo "sharing the broker and a PostgreSQL store (and state), checked the same"
    echo "way but for the index, which one process owns and is not under test there."
    echo
    echo "| fault | what was done | records expected | found | duplicates | lost |"
    echo "| --- | --- | ---: | ---: | ---: | ---: |"
    sort "$rows"/*.md
} > docs/FAULTS.md
echo "wrote docs/FAULTS.md ($(ls "$rows" | wc -l) faults)"

#!/usr/bin/env bash
# Run `pip install ARGS...` showing one short line per package step with the elapsed time, instead of
# pip's silence under -q (a first install takes minutes) or its hundreds of lines without it.
# Usage: scripts/pip-progress.sh PYTHON ARGS...   (exit code is pip's; its full log is kept on failure)
set -euo pipefail
py=$1; shift
log=$(mktemp "${TMPDIR:-/tmp}/btq-pip-XXXXXX.log")
start=$(date +%s)
set +e
"$py" -m pip install --progress-bar off "$@" 2>&1 | tee "$log" | while IFS= read -r line; do
  case "$line" in
    Collecting*|"Building wheel"*|"Building editable"*|"Installing collected"*|Successfully*|ERROR*)
      printf '  pip [%4ss] %.100s\n' "$(( $(date +%s) - start ))" "$line" ;;
  esac
done
code=${PIPESTATUS[0]}
set -e
if [ "$code" -ne 0 ]; then
  echo "pip failed (exit $code); full log: $log" >&2
else
  rm -f "$log"
fi
exit "$code"

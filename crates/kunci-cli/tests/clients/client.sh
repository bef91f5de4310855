#!/bin/sh
# kunci agent client for shell scripts: curl --unix-socket.
# `sh client.sh PROFILE` prints one JSON line (built with python3 -c to stay a plain sh script).
set -eu
socket="${KUNCI_AGENT:-$XDG_RUNTIME_DIR/kunci/agent.sock}"
profile="${1:-stamps}"

token=$(curl -sf --unix-socket "$socket" -H 'Accept: text/plain' "http://localhost/v1/token/$profile")
header=$(curl -sf --unix-socket "$socket" -H 'Accept: text/plain' "http://localhost/v1/header/$profile")
# after the API answered 401 for "$token":
answer=$(curl -sf --unix-socket "$socket" --data-binary "$token" "http://localhost/v1/invalidate/$profile")
after=$(curl -sf --unix-socket "$socket" -H 'Accept: text/plain' "http://localhost/v1/token/$profile")

python3 -c 'import json, sys; t, h, a, n = sys.argv[1:]; print(json.dumps({"token": t, "header": h, "invalidated": json.loads(a)["invalidated"], "after": n}))' \
  "$token" "$header" "$answer" "$after"

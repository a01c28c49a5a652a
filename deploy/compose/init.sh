#!/bin/sh
# The compose stack's one-shot `init` service, in the shopflow image: everything
# the two shopflow processes expect to exist before they start. Each step is
# idempotent, so `docker compose up` may run it again at any time.
set -eu
config=/etc/shopflow/shopflow.toml

# moto answers 200 for a new bucket and for one we already own; any other
# answer (or none after 30 tries) stops the stack with the reason.
code=$(curl -s -o /tmp/bucket.out -w '%{http_code}' --retry 30 --retry-connrefused --retry-delay 1 \
  -X PUT http://s3:5000/shopflow-lake)
if [ "$code" != 200 ] && [ "$code" != 409 ]; then
  echo "init: creating bucket shopflow-lake returned HTTP $code:" >&2
  cat /tmp/bucket.out >&2
  exit 1
fi
shopflow topics create --config "$config"
shopflow migrate --config "$config"
echo "init: bucket, topics and warehouse schema are ready"

#!/usr/bin/env bash
# The contract test: validates openapi.yaml (OpenAPI 3.1) and runs schemathesis against a live
# sessiond (the debug build `swift build` made) on a private redis-server, both on free loopback
# ports, both stopped by PID at the end. Bounded: schemathesis gets a fixed example budget and a
# time limit. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

python3 -m pip --version >/dev/null 2>&1 || { echo "python3 with pip is required for the contract test" >&2; exit 1; }
need=()
python3 -c 'import schemathesis' 2>/dev/null || need+=("schemathesis==4.32.5")
python3 -c 'import openapi_spec_validator' 2>/dev/null || need+=("openapi-spec-validator")
if ((${#need[@]})); then
    echo "installing from PyPI: ${need[*]}"
    python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "${need[@]}"
fi

# The root openapi.yaml is a link to the copy the server bundles; a replaced link would let them drift.
[[ -L openapi.yaml && openapi.yaml -ef Sources/SessionService/Resources/openapi.yaml ]] || {
    echo "openapi.yaml must be a symbolic link to Sources/SessionService/Resources/openapi.yaml" >&2; exit 1; }
echo "validating openapi.yaml"
python3 - <<'PY'
import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator
with open("openapi.yaml") as f:
    spec = yaml.safe_load(f)
assert spec["openapi"].startswith("3.1"), "openapi.yaml must be OpenAPI 3.1"
validate(spec, cls=OpenAPIV31SpecValidator)
print("openapi.yaml is a valid OpenAPI 3.1 document")
PY

swift build --product sessiond >/dev/null
workdir=$(mktemp -d)
redis_pid="" sessiond_pid=""
trap 'stop_pids $sessiond_pid $redis_pid; rm -rf "$workdir"' EXIT
start_sessiond_with_redis "$workdir" SESSIOND_LOG_LEVEL=error SESSIOND_API_KEYS=contract-test-key-0123456789

# Every check runs except ensure_resource_availability: sessions legitimately vanish between the
# steps of a generated scenario (schema-valid one-second timeouts expire them; linked rotate and
# delete steps end them), and a 404 then is exactly the contract.
echo "schemathesis against $sessiond_url"
status=0
(cd "$workdir" && PYTHONPATH="$OLDPWD/scripts" SCHEMATHESIS_HOOKS=schemathesis_hooks timeout 600 st --config-file "$OLDPWD/scripts/schemathesis.toml" run "$OLDPWD/openapi.yaml" --url "$sessiond_url" \
    --checks all --exclude-checks ensure_resource_availability --max-examples "${CONTRACT_EXAMPLES:-60}" --max-time "${CONTRACT_SECONDS:-180}" --seed 1 \
    -H "Authorization: Bearer contract-test-key-0123456789" --request-timeout 10 --no-color) || status=$?
if ((status != 0)); then
    echo "--- sessiond log ---"; tail -50 "$workdir/sessiond.log"
fi
exit $status

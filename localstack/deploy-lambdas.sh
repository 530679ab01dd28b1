#!/usr/bin/env bash
# Deploy every function of stack.yml to LocalStack as an AWS Lambda with a Function URL.
#
#   localstack/deploy-lambdas.sh [FUNCTION ...]        (default: every function in stack.yml)
#
# Each function is packaged as one zip: the shared library installed with the function's extras plus
# `lambda` (Mangum), for the Lambda platform (manylinux wheels for the runtime's CPython), and functions/<name>/*.py at
# the root, so the handler is `handler.handler`. The function list, extras, timeouts and environment come
# from `aiteacher manifests --lambda-plan` (stack.yml + env/common.yml), never from this script.
#
# Needs: LocalStack running (localstack/compose.yml), the AWS CLI and awslocal (`pip install awscli
# awscli-local`: awscli-local alone is only the wrapper) or AWS="aws --endpoint-url http://127.0.0.1:4566",
# and servers the Lambdas can reach from their containers (LocalStack starts them on the compose network
# aiteacher-localstack, where localstack/compose.yml runs PostgreSQL and Redis):
#   DATABASE_URL   e.g. postgresql://postgres@postgres:5432/aiteacher                 (required)
#   REDIS_URL      e.g. redis://redis:6379/0                                         (required)
#   JWT_SECRET     shared by every function (default: generated once into build/lambda/jwt-secret)
#   S3_TO_LAMBDA=1 also send ObjectCreated(*.pdf) straight to the object-created Lambda (S3 event)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
read -r -a AWS <<<"${AWS:-awslocal}"
# python3.12 runs on Amazon Linux 2023 (glibc 2.34): onnxruntime >= 1.20 ships manylinux_2_28 wheels only,
# which the python3.11 runtime (Amazon Linux 2, glibc 2.26) cannot load.
RUNTIME="${LAMBDA_RUNTIME:-python3.12}"
PY_VERSION="${RUNTIME#python}"
ARCH="${LAMBDA_ARCH:-x86_64}"
ARTIFACTS="${ARTIFACTS_BUCKET:-lambda-artifacts}"
ROLE="${LAMBDA_ROLE:-arn:aws:iam::000000000000:role/lambda-role}"
OUT="${OUT:-build/lambda}"
# The S3 endpoint as a Lambda container sees LocalStack.
ENDPOINT_IN_LAMBDA="${ENDPOINT_IN_LAMBDA:-http://localhost.localstack.cloud:4566}"
OBJECT_CREATED="${OBJECT_CREATED_FUNCTION:-object-created}"

: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL server the Lambda containers can reach}"
: "${REDIS_URL:?set REDIS_URL to a Redis server the Lambda containers can reach}"
mkdir -p "$OUT"
if [ -z "${JWT_SECRET:-}" ]; then
    [ -s "$OUT/jwt-secret" ] || "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(48))' >"$OUT/jwt-secret"
    JWT_SECRET=$(cat "$OUT/jwt-secret")
fi
export DATABASE_URL REDIS_URL JWT_SECRET ENDPOINT_IN_LAMBDA

PLAN="$OUT/plan.json"
"$PYTHON" -m aiteacher.cli manifests --lambda-plan >"$PLAN"
# One line per selected function: name, handler folder, extras, timeout, memory; plus its environment file.
FUNCTIONS=$("$PYTHON" - "$PLAN" "$OUT" "$@" <<'PY'
import json, os, sys
plan_path, out, selected = sys.argv[1], sys.argv[2], sys.argv[3:]
plan = json.load(open(plan_path))
unknown = set(selected) - {f["name"] for f in plan}
if unknown:
    sys.exit(f"not in stack.yml: {', '.join(sorted(unknown))}")
for function in plan:
    if selected and function["name"] not in selected:
        continue
    env = dict(function["environment"])
    env["S3_ENDPOINT_URL"] = os.environ["ENDPOINT_IN_LAMBDA"]
    env["DATABASE_URL"] = os.environ["DATABASE_URL"]
    env["REDIS_URL"] = os.environ["REDIS_URL"]
    env["JWT_SECRET"] = os.environ["JWT_SECRET"]
    env["DB_USE_PGBOUNCER"] = os.environ.get("DB_USE_PGBOUNCER", "false")
    for secret in function["secrets"]:  # other secrets from this shell's environment (settings read env vars)
        variable = secret.replace("-", "_").upper()
        if os.environ.get(variable):
            env[variable] = os.environ[variable]
    env["DATA_DIR"] = "/tmp/aiteacher"  # the only writable folder in a Lambda
    if os.environ.get("QDRANT_URL"):
        env["QDRANT_URL"] = os.environ["QDRANT_URL"]
    else:  # no server: search falls back to Qdrant Edge in /tmp (empty per container)
        env.pop("QDRANT_URL", None)
    folder = os.path.join(out, function["name"])
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "environment.json"), "w") as handle:
        json.dump({"Variables": {k: v for k, v in env.items() if v != ""}}, handle)
    print(function["name"], function["handler_dir"], function["extras"], function["timeout"], function["memory"])
PY
)

echo "== shared library wheel"
rm -rf "$OUT/wheels"
"$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$OUT/wheels" ./shared
WHEEL=$(ls "$OUT"/wheels/aiteacher-*.whl)

"${AWS[@]}" s3api head-bucket --bucket "$ARTIFACTS" >/dev/null 2>&1 \
    || "${AWS[@]}" s3api create-bucket --bucket "$ARTIFACTS" >/dev/null

while read -r NAME HANDLER_DIR EXTRAS TIMEOUT MEMORY; do
    [ -n "$NAME" ] || continue
    echo "== $NAME (extras: $EXTRAS)"
    DIR="$OUT/$NAME"
    rm -rf "$DIR/package" "$DIR/function.zip"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --target "$DIR/package" \
        --platform "manylinux2014_$ARCH" --platform "manylinux_2_28_$ARCH" --implementation cp \
        --python-version "$PY_VERSION" --only-binary=:all: --no-compile "$WHEEL[$EXTRAS]"
    cp "$HANDLER_DIR"/*.py "$DIR/package/"
    # No bytecode in the zip: pip's (--no-compile) would be for this Python, not the runtime's, and
    # byte-compiling every dependency more than doubles the zip for modules a function never imports.
    find "$DIR/package" -name __pycache__ -type d -prune -exec rm -rf {} +
    "$PYTHON" -m zipfile -c "$DIR/function.zip" "$DIR/package/."  # "dir/." puts its files at the zip root
    "${AWS[@]}" s3 cp --quiet "$DIR/function.zip" "s3://$ARTIFACTS/$NAME.zip"

    if "${AWS[@]}" lambda get-function --function-name "$NAME" >/dev/null 2>&1; then
        "${AWS[@]}" lambda update-function-code --function-name "$NAME" --s3-bucket "$ARTIFACTS" \
            --s3-key "$NAME.zip" >/dev/null
        "${AWS[@]}" lambda wait function-updated-v2 --function-name "$NAME"
        "${AWS[@]}" lambda update-function-configuration --function-name "$NAME" --timeout "$TIMEOUT" \
            --memory-size "$MEMORY" --environment "file://$DIR/environment.json" >/dev/null
    else
        "${AWS[@]}" lambda create-function --function-name "$NAME" --runtime "$RUNTIME" \
            --handler handler.handler --role "$ROLE" --code "S3Bucket=$ARTIFACTS,S3Key=$NAME.zip" \
            --architectures "$([ "$ARCH" = aarch64 ] && echo arm64 || echo x86_64)" \
            --timeout "$TIMEOUT" --memory-size "$MEMORY" --environment "file://$DIR/environment.json" >/dev/null
    fi
    "${AWS[@]}" lambda wait function-active-v2 --function-name "$NAME"
    URL=$("${AWS[@]}" lambda get-function-url-config --function-name "$NAME" --query FunctionUrl --output text \
          2>/dev/null) || URL=$("${AWS[@]}" lambda create-function-url-config --function-name "$NAME" \
          --auth-type NONE --query FunctionUrl --output text)
    echo "$NAME  $URL"
done <<<"$FUNCTIONS"

if [ "${S3_TO_LAMBDA:-0}" = "1" ] && grep -q "^$OBJECT_CREATED " <<<"$FUNCTIONS"; then
    BUCKET="${S3_BUCKET:-curriculum}"
    echo "== s3://$BUCKET ObjectCreated(*.pdf) -> Lambda $OBJECT_CREATED (kept: the queue notification)"
    ARN=$("${AWS[@]}" lambda get-function --function-name "$OBJECT_CREATED" --query Configuration.FunctionArn \
          --output text)
    "${AWS[@]}" lambda add-permission --function-name "$OBJECT_CREATED" --statement-id s3-invoke \
        --action lambda:InvokeFunction --principal s3.amazonaws.com --source-arn "arn:aws:s3:::$BUCKET" \
        >/dev/null 2>&1 || true
    CURRENT=$("${AWS[@]}" s3api get-bucket-notification-configuration --bucket "$BUCKET" --output json)
    MERGED=$("$PYTHON" - "$ARN" "$CURRENT" <<'PY'
import json, sys
arn, current = sys.argv[1], json.loads(sys.argv[2] or "{}")
current.pop("ResponseMetadata", None)
lambdas = [c for c in current.get("LambdaFunctionConfigurations", []) if c.get("Id") != "pdf-to-lambda"]
lambdas = [c for c in lambdas if c.get("Id") != "upper-pdf-to-lambda"]
for rule_id, suffix in (("pdf-to-lambda", ".pdf"), ("upper-pdf-to-lambda", ".PDF")):  # suffixes are case-sensitive
    lambdas.append({"Id": rule_id, "LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "suffix", "Value": suffix}]}}})
current["LambdaFunctionConfigurations"] = lambdas
print(json.dumps(current))
PY
)
    "${AWS[@]}" s3api put-bucket-notification-configuration --bucket "$BUCKET" --notification-configuration "$MERGED"
fi

#!/bin/sh
# Lays out a function build context the same way whichever tool made it (see the Dockerfile).
#   usage: prepare-context.sh CONTEXT STAGE [FUNCTION]
#   CONTEXT   faas-cli's build/<fn>/ (function/ holds the handler and the copied shared/, migrations/,
#             alembic.ini) or the repository root (functions/<FUNCTION>/, shared/, migrations/, ...)
#   STAGE     receives shared/ (the library to install) and app/ (function/, migrations/, alembic.ini)
#   FUNCTION  the function to take from functions/ in a repository-root context; empty: none (worker)
set -eu
context=$1
stage=$2
function=${3:-}

first() {
    for candidate in "$@"; do
        if [ -e "$candidate" ]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

shared=$(first "$context/function/shared" "$context/shared") || {
    echo "prepare-context: no shared/ in the build context (stack.yml configuration.copy must list ./shared)" >&2
    exit 1
}
[ -f "$shared/pyproject.toml" ] || { echo "prepare-context: $shared/pyproject.toml is missing" >&2; exit 1; }
mkdir -p "$stage/app/function"
cp -R "$shared" "$stage/shared"
if migrations=$(first "$context/function/migrations" "$context/migrations"); then
    cp -R "$migrations" "$stage/app/migrations"
fi
if ini=$(first "$context/function/alembic.ini" "$context/alembic.ini"); then
    cp "$ini" "$stage/app/alembic.ini"
fi

if [ -f "$context/function/handler.py" ]; then
    source_dir="$context/function"
elif [ -n "$function" ]; then
    source_dir="$context/functions/$function"
    [ -f "$source_dir/handler.py" ] || { echo "prepare-context: $source_dir/handler.py not found" >&2; exit 1; }
else
    source_dir=""
fi
if [ -n "$source_dir" ]; then
    cp -R "$source_dir/." "$stage/app/function/"
    rm -rf "$stage/app/function/shared" "$stage/app/function/migrations" "$stage/app/function/alembic.ini"
fi

# Caches and local state that slipped past the .dockerignore never reach the image.
find "$stage" \( -name __pycache__ -o -name '*.egg-info' -o -name .pytest_cache -o -name .data \) -prune \
    -exec rm -rf {} +
echo "prepare-context: shared=$shared function=${source_dir:-none}"

#!/usr/bin/env bash
# The image's build steps. The Dockerfile runs them; tests/integration/test_image_build.py runs
# the same script on the host, so the commands are exercised without a container engine.
#
#   docker/build.sh wheels OUT        wheels of esm-poller (with its Cython batcher) and of every
#                                     dependency, into OUT; fails when the batcher was not built
#   docker/build.sh install WHEELS DIR
#                                     a virtualenv in DIR holding esm-poller installed from WHEELS
#                                     only (no package index), checked to import the batcher
set -euo pipefail
PYTHON=${PYTHON:-python3}

usage() { sed -n '5,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }

case ${1-} in
  wheels)
    [[ $# -eq 2 ]] || usage
    out=$2
    mkdir -p "$out"
    "$PYTHON" -m pip wheel --disable-pip-version-check --wheel-dir "$out" .
    "$PYTHON" - "$out" <<'PY'
import pathlib, sys, zipfile
wheels = sorted(pathlib.Path(sys.argv[1]).glob("esm_poller-*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one esm-poller wheel, found {[w.name for w in wheels]}")
names = zipfile.ZipFile(wheels[0]).namelist()
if not any(n.startswith("poller/_fastbatch") and n.endswith((".so", ".pyd")) for n in names):
    sys.exit(f"{wheels[0].name} has no compiled poller._fastbatch (is a C compiler installed?)")
print(f"built {wheels[0].name}")
PY
    ;;
  install)
    [[ $# -eq 3 ]] || usage
    wheels=$2 dir=$3
    "$PYTHON" -m venv "$dir"
    "$dir/bin/python" -m pip install --disable-pip-version-check --no-cache-dir --no-index \
      --find-links "$wheels" esm-poller
    "$dir/bin/python" -I -c 'import poller.batching as b; assert b.IMPLEMENTATION == "cython", b.IMPLEMENTATION'
    "$dir/bin/poller" --help >/dev/null
    echo "installed esm-poller into $dir"
    ;;
  *) usage ;;
esac

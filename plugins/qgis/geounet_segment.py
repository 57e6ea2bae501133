# -*- coding: utf-8 -*-

"""
***************************************************************************
*                                                                         *
*   geounet: QGIS Processing script "Segment buildings / land use".       *
*   MIT licence, as geounet.                                              *
*                                                                         *
***************************************************************************

Processing algorithm that segments a raster layer with geounet's U-Net and
returns the footprints as a vector layer (and, optionally, the probability
raster).

geounet runs in a subprocess (``<python> -m geounet predict ... --progress
json``) so that torch and geounet's numpy/rasterio never load into QGIS's own
Python. Install the file by copying it into QGIS's Scripts folder (or by
pointing the Scripts folder setting at ``plugins/qgis/``); its algorithm id is
then ``script:geounet_segment``. ``geounet_provider.py`` registers the same
algorithm as ``geounet:geounet_segment`` from Python. See ``docs/qgis.md``.

QGIS executes this file whenever it loads scripts: keep the top level to the
standard library and ``qgis`` imports, and keep one ``QgsProcessingAlgorithm``
subclass in it.
"""

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time

from qgis.PyQt.QtCore import QCoreApplication
from qgis.core import (QgsFeature,
                       QgsFeatureRequest,
                       QgsFeatureSink,
                       QgsFields,
                       QgsProcessing,
                       QgsProcessingAlgorithm,
                       QgsProcessingException,
                       QgsProcessingFeedback,
                       QgsProcessingOutputNumber,
                       QgsProcessingParameterBand,
                       QgsProcessingParameterBoolean,
                       QgsProcessingParameterDefinition,
                       QgsProcessingParameterEnum,
                       QgsProcessingParameterFile,
                       QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterRasterLayer,
                       QgsProcessingParameterString,
                       QgsProcessingParameterVectorDestination,
                       QgsProcessingUtils,
                       QgsProviderRegistry,
                       QgsVectorLayer)

#: Environment variable naming the Python interpreter that has geounet installed.
PYTHON_ENV_VAR = "GEOUNET_PYTHON"

#: Variables removed from the child's environment: QGIS's own Python and GDAL/PROJ
#: settings (set by OSGeo4W and the macOS bundle) must not leak into geounet's
#: interpreter, which has its own numpy, rasterio, GDAL and PROJ.
CLEARED_ENV_VARS = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE",
                    "GDAL_DRIVER_PATH", "GDAL_DATA", "PROJ_LIB", "PROJ_DATA")

#: Vector formats geounet writes itself in the raster's CRS; any other
#: destination (shapefile, GeoJSON, a table in a database...) is written by QGIS
#: from a temporary GeoPackage, also in the raster's CRS.
DIRECT_VECTOR_EXTENSIONS = (".gpkg", ".fgb", ".parquet")

#: Share of the progress bar given to the predict stage; vectorising and
#: writing take the rest.
PREDICT_SHARE = 95.0

#: Seconds given to geounet to clean up after SIGTERM before it is killed.
TERMINATE_GRACE_S = 10.0


class GeounetSegmentAlgorithm(QgsProcessingAlgorithm):
    """Segment a raster layer into building footprints / land-use polygons with geounet.

    The algorithm calls ``geounet predict`` in a separate Python interpreter,
    follows its JSON progress lines, honours cancellation (geounet is sent
    SIGTERM and every partial output is removed) and turns geounet's one-line
    error message into a :class:`QgsProcessingException` with the same text.
    """

    INPUT = "INPUT"
    MODEL = "MODEL"
    BANDS = "BANDS"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    THRESHOLD = "THRESHOLD"
    MIN_AREA = "MIN_AREA"
    SIMPLIFY = "SIMPLIFY"
    SIEVE = "SIEVE"
    FILL_HOLES = "FILL_HOLES"
    SPLIT_TOUCHING = "SPLIT_TOUCHING"
    REGULARIZE = "REGULARIZE"
    TTA = "TTA"
    DEVICE = "DEVICE"
    RUNTIME = "RUNTIME"
    RESAMPLE = "RESAMPLE"
    PYTHON = "PYTHON"
    OUTPUT = "OUTPUT"
    PROBABILITY = "PROBABILITY"
    CLASS_RASTER = "CLASS_RASTER"
    FOOTPRINT_COUNT = "FOOTPRINT_COUNT"

    #: Values of the TTA enum, as ``geounet predict --tta`` takes them.
    TTA_MODES = ("none", "flips", "d4")
    #: Values of the RUNTIME enum, as ``geounet predict --runtime`` takes them.
    RUNTIMES = ("auto", "torch", "onnxruntime", "openvino", "fastest")
    #: Values of the RESAMPLE enum, as ``geounet predict --resample`` takes them.
    RESAMPLE_MODES = ("auto", "off")

    def tr(self, string):
        """Return a translatable string.

        Args:
            string: The English text.

        Returns:
            The text translated in the "Processing" context.
        """
        return QCoreApplication.translate("Processing", string)

    def createInstance(self):
        """Return a new instance of the algorithm (QGIS calls this for every run)."""
        return GeounetSegmentAlgorithm()

    def name(self):
        """Return the algorithm's fixed name (``script:geounet_segment`` as a script)."""
        return "geounet_segment"

    def displayName(self):
        """Return the algorithm's name as shown in the toolbox."""
        return self.tr("Segment buildings / land use (geounet)")

    def group(self):
        """Return the (translated) group name."""
        return self.tr("geounet")

    def groupId(self):
        """Return the fixed group id."""
        return "geounet"

    def tags(self):
        """Return search tags for the toolbox."""
        return self.tr("segmentation,unet,u-net,deep learning,buildings,footprints,"
                       "land use,land cover,classification,geounet").split(",")

    def shortHelpString(self):
        """Return the help text shown beside the algorithm's dialog."""
        return self.tr(
            "Segments a raster with a U-Net (geounet) and writes the polygons it finds "
            "(building footprints with the default model) in the raster's CRS, with the "
            "attributes class_id, class_name, area_m2 and score.\n\n"
            "The raster must be a file (a GeoTIFF, for example); save web and database "
            "layers to a GeoTIFF first.\n\n"
            "Model: a geounet .safetensors model file, or the name of a bundled model: "
            "buildings-atlanta (the default when empty; 1-band panchromatic, 0.5 m, building "
            "footprints) or landcover-landsat7 (Landsat 7 ETM+ bands 1-5, 28.5 m, seven "
            "land-cover classes; every pixel becomes part of a polygon with its class_name). "
            "Bands: the raster bands to feed the model, in its input order (default: the "
            "model's own). Tile size, overlap and threshold default to the model's values.\n\n"
            "Minimum mapping unit (land cover): regions smaller than it take the class of "
            "their largest neighbour, so the polygons still cover the raster.\n\n"
            "Footprint options: fill holes below an area, split touching buildings, "
            "regularise to right angles (falls back to the raw polygon when that changes it "
            "too much). Test-time augmentation averages flipped (3 passes) or flipped and "
            "rotated (8 passes) tiles: slower, usually smoother.\n\n"
            "Class raster: optional GeoTIFF of class ids with a colour table.\n\n"
            "geounet runs in its own Python interpreter, not in QGIS's. Set the advanced "
            "parameter 'Python interpreter with geounet' (or the GEOUNET_PYTHON environment "
            "variable) to the python of the virtual environment where geounet is installed, "
            "e.g. /home/me/geounet-venv/bin/python; otherwise the geounet command on PATH "
            "is used.\n\n"
            "Cancelling stops geounet and removes every partial output."
        )

    def initAlgorithm(self, config=None):
        """Declare the parameters and outputs.

        Args:
            config: Unused; part of QGIS's signature.
        """
        self.addParameter(QgsProcessingParameterRasterLayer(
            self.INPUT, self.tr("Input raster layer")))
        self.addParameter(QgsProcessingParameterFile(
            self.MODEL, self.tr("Model file or bundled model name (empty: buildings-atlanta; "
                                "or landcover-landsat7)"),
            behavior=QgsProcessingParameterFile.File, optional=True,
            fileFilter=self.tr("geounet models (*.safetensors);;All files (*)")))
        self.addParameter(QgsProcessingParameterBand(
            self.BANDS, self.tr("Bands, in the model's input order (empty: the model's)"),
            parentLayerParameterName=self.INPUT, optional=True, allowMultiple=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.TILE_SIZE, self.tr("Tile size in pixels (empty: the model's)"),
            type=QgsProcessingParameterNumber.Integer, optional=True, minValue=1))
        self.addParameter(QgsProcessingParameterNumber(
            self.OVERLAP, self.tr("Tile overlap in pixels (empty: the model's)"),
            type=QgsProcessingParameterNumber.Integer, optional=True, minValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            self.THRESHOLD, self.tr("Probability threshold (empty: the model's)"),
            type=QgsProcessingParameterNumber.Double, optional=True, minValue=0.0,
            maxValue=1.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.MIN_AREA, self.tr("Minimum polygon area (m²)"),
            type=QgsProcessingParameterNumber.Double, defaultValue=0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.SIMPLIFY, self.tr("Simplification tolerance (m, 0: none)"),
            type=QgsProcessingParameterNumber.Double, defaultValue=0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.SIEVE, self.tr("Minimum mapping unit: merge smaller regions into their "
                                "largest neighbour (m², 0: off)"),
            type=QgsProcessingParameterNumber.Double, defaultValue=0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.FILL_HOLES, self.tr("Fill holes smaller than (m², 0: keep all)"),
            type=QgsProcessingParameterNumber.Double, defaultValue=0.0, minValue=0.0))
        self.addParameter(QgsProcessingParameterBoolean(
            self.SPLIT_TOUCHING, self.tr("Split touching buildings"), defaultValue=False))
        self.addParameter(QgsProcessingParameterBoolean(
            self.REGULARIZE, self.tr("Regularise footprints (right angles)"),
            defaultValue=False))
        self.addParameter(QgsProcessingParameterEnum(
            self.TTA, self.tr("Test-time augmentation"), options=list(self.TTA_MODES),
            defaultValue=0))
        self.addParameter(QgsProcessingParameterString(
            self.DEVICE, self.tr("Device (auto, cpu, cuda or cuda:N)"), defaultValue="auto"))
        self.addParameter(QgsProcessingParameterEnum(
            self.RUNTIME, self.tr("Runtime (auto: torch if installed, else onnxruntime)"),
            options=list(self.RUNTIMES), defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum(
            self.RESAMPLE, self.tr("Ground resolution (auto: read the raster at the model's "
                                   "GSD when they differ by more than 10 %)"),
            options=list(self.RESAMPLE_MODES), defaultValue=0))
        python = QgsProcessingParameterFile(
            self.PYTHON,
            self.tr("Python interpreter with geounet (empty: $GEOUNET_PYTHON, else geounet "
                    "on PATH)"),
            behavior=QgsProcessingParameterFile.File, optional=True,
            fileFilter=self.tr("All files (*)"))  # interpreters have no extension
        python.setFlags(python.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(python)
        self.addParameter(QgsProcessingParameterVectorDestination(
            self.OUTPUT, self.tr("Footprints"), type=QgsProcessing.TypeVectorPolygon))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.PROBABILITY, self.tr("Probability raster"), optional=True,
            createByDefault=False))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.CLASS_RASTER, self.tr("Class raster"), optional=True,
            createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber(
            self.FOOTPRINT_COUNT, self.tr("Number of footprints")))

    # ------------------------------------------------------------------ run

    def processAlgorithm(self, parameters, context, feedback):
        """Run ``geounet predict`` on the input raster and publish its outputs.

        Args:
            parameters: Parameter values, by name.
            context: The processing context.
            feedback: Progress, log and cancellation channel.

        Returns:
            ``OUTPUT`` (the footprints layer), ``PROBABILITY`` (the probability
            raster or ``None``), ``CLASS_RASTER`` (the class raster or ``None``)
            and ``FOOTPRINT_COUNT``.

        Raises:
            QgsProcessingException: on bad inputs, when geounet fails (with its
                message) and when the run is cancelled.
        """
        if feedback is None:
            feedback = QgsProcessingFeedback()
        scene = self._scene_path(parameters, context)
        command = self._geounet_command(parameters, context)
        destination = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        prob_destination = None
        if parameters.get(self.PROBABILITY) not in (None, ""):
            prob_destination = self.parameterAsOutputLayer(parameters, self.PROBABILITY,
                                                           context) or None
        class_destination = None
        if parameters.get(self.CLASS_RASTER) not in (None, ""):
            class_destination = self.parameterAsOutputLayer(parameters, self.CLASS_RASTER,
                                                            context) or None
        for raster in (prob_destination, class_destination):
            if raster and os.path.splitext(raster)[1].lower() not in (".tif", ".tiff"):
                raise QgsProcessingException(self.tr(
                    "The probability and class rasters are written as GeoTIFFs: choose a "
                    ".tif file name instead of {}").format(raster))
        direct = _is_plain_path(destination) and (
            os.path.splitext(destination)[1].lower() in DIRECT_VECTOR_EXTENSIONS)

        staging = _Staging()
        try:
            if direct:
                vector_tmp = staging.path_for(destination)
            else:
                vector_tmp = os.path.join(
                    staging.private_dir(QgsProcessingUtils.tempFolder()), "footprints.gpkg")
            prob_tmp = staging.path_for(prob_destination) if prob_destination else None
            class_tmp = staging.path_for(class_destination) if class_destination else None

            command += ["predict", scene, "-o", vector_tmp, "--progress", "json", "-q"]
            command += self._options(parameters, context)
            if prob_tmp:
                command += ["--prob-out", prob_tmp]
            if class_tmp:
                command += ["--mask-out", class_tmp]
            feedback.pushCommandInfo(" ".join(_quote(a) for a in command))
            _run_geounet(command, feedback, cwd=os.path.dirname(vector_tmp))

            if not os.path.isfile(vector_tmp):
                raise QgsProcessingException(self.tr(
                    "geounet ended without error but wrote no output; is {} the Python "
                    "interpreter of geounet's environment?").format(command[0]))
            if direct:
                staging.commit(vector_tmp, destination)
                count = _feature_count(destination)
            else:
                destination, count = self._convert(vector_tmp, destination, context, feedback)
            if prob_tmp:
                staging.commit(prob_tmp, prob_destination)
            if class_tmp:
                staging.commit(class_tmp, class_destination)
        finally:
            staging.cleanup()

        feedback.setProgress(100)
        if count is not None:
            feedback.pushInfo(self.tr("{} polygons written to {}").format(count, destination))
        return {self.OUTPUT: destination, self.PROBABILITY: prob_destination,
                self.CLASS_RASTER: class_destination, self.FOOTPRINT_COUNT: count}

    # ------------------------------------------------------------ helpers

    def _scene_path(self, parameters, context):
        """Return the file path of the input raster, or raise when it is not a file."""
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, self.INPUT))
        provider = layer.providerType()
        parts = QgsProviderRegistry.instance().decodeUri(provider, layer.source())
        path = parts.get("path") or ""
        if provider != "gdal" or parts.get("layerName") or not os.path.isfile(path):
            label = "'{}'".format(layer.name()) if layer.name() else self.tr("the input layer")
            # A web or database source may hold credentials: name only the provider.
            origin = ("source '{}'".format(layer.source()) if provider == "gdal"
                      else "provider '{}'".format(provider))
            raise QgsProcessingException(self.tr(
                "geounet reads rasters from files, but {} is not file-based ({}). Save it as "
                "a GeoTIFF first (right-click the layer > Export > Save As..., or Raster > "
                "Conversion > Translate) and run geounet on that file.").format(label, origin))
        return os.path.abspath(path)

    def _geounet_command(self, parameters, context):
        """Return the start of the command line: ``[python, -m, geounet]`` or ``[geounet]``."""
        python = self.parameterAsFile(parameters, self.PYTHON, context)
        origin = self.tr("the 'Python interpreter with geounet' parameter")
        if not python:
            python = os.environ.get(PYTHON_ENV_VAR, "").strip()
            origin = self.tr("the {} environment variable").format(PYTHON_ENV_VAR)
        if not python:
            exe = shutil.which("geounet")
            if exe is None:
                raise QgsProcessingException(self.tr(
                    "geounet was not found: set the advanced parameter 'Python interpreter "
                    "with geounet' or the {} environment variable to the python of the "
                    "environment where geounet is installed (e.g. /path/to/venv/bin/python), "
                    "or put the geounet command on PATH.").format(PYTHON_ENV_VAR))
            return [exe]
        resolved = python if os.path.dirname(python) else (shutil.which(python) or python)
        if not os.path.isfile(resolved):
            raise QgsProcessingException(self.tr(
                "The Python interpreter '{}' (from {}) does not exist; give the python of the "
                "environment where geounet is installed, e.g. /path/to/venv/bin/python."
            ).format(python, origin))
        if not os.access(resolved, os.X_OK):
            raise QgsProcessingException(self.tr(
                "The Python interpreter '{}' (from {}) is not executable; give the python of "
                "the environment where geounet is installed.").format(python, origin))
        return [resolved, "-m", "geounet"]

    def _options(self, parameters, context):
        """Translate the algorithm's parameters into ``geounet predict`` options."""
        args = []
        model = self.parameterAsFile(parameters, self.MODEL, context)
        if model:
            # geounet runs in another folder: make a relative file path absolute.
            args += ["--model", os.path.abspath(model) if os.path.isfile(model) else model]
        bands = self.parameterAsInts(parameters, self.BANDS, context)
        if bands:
            args += ["--bands", ",".join(str(b) for b in bands)]
        for name, option in ((self.TILE_SIZE, "--tile-size"), (self.OVERLAP, "--overlap")):
            if _is_set(parameters, name):
                args += [option, str(self.parameterAsInt(parameters, name, context))]
        if _is_set(parameters, self.THRESHOLD):
            args += ["--threshold", repr(self.parameterAsDouble(parameters, self.THRESHOLD,
                                                                 context))]
        for name, option in ((self.MIN_AREA, "--min-area"), (self.SIMPLIFY, "--simplify"),
                             (self.SIEVE, "--sieve"), (self.FILL_HOLES, "--fill-holes")):
            value = self.parameterAsDouble(parameters, name, context)
            if value:
                args += [option, repr(value)]
        for name, flag in ((self.SPLIT_TOUCHING, "--split-touching"),
                           (self.REGULARIZE, "--regularize")):
            if self.parameterAsBool(parameters, name, context):
                args.append(flag)
        tta = self.TTA_MODES[self.parameterAsEnum(parameters, self.TTA, context)]
        if tta != "none":
            args += ["--tta", tta]
        device = (self.parameterAsString(parameters, self.DEVICE, context) or "auto").strip()
        args += ["--device", device]
        args += ["--runtime", self.RUNTIMES[self.parameterAsEnum(parameters, self.RUNTIME,
                                                                  context)]]
        resample = self.RESAMPLE_MODES[self.parameterAsEnum(parameters, self.RESAMPLE, context)]
        if resample != "auto":
            args += ["--resample", resample]
        return args

    def _convert(self, source_path, destination, context, feedback):
        """Copy the GeoPackage geounet wrote into a destination QGIS writes itself.

        Returns:
            ``(destination, count)``: the destination as QGIS resolved it and the
            number of features written.
        """
        source = QgsVectorLayer(source_path, "footprints", "ogr")
        try:
            if not source.isValid():
                raise QgsProcessingException(self.tr(
                    "Could not read geounet's output {}").format(source_path))
            keys = set(source.primaryKeyAttributes())
            fields = QgsFields()
            kept = []
            for i, field in enumerate(source.fields()):
                if i not in keys:
                    fields.append(field)
                    kept.append(i)
            sink, dest_id = QgsProcessingUtils.createFeatureSink(
                destination, context, fields, source.wkbType(), source.crs())
            if sink is None:
                raise QgsProcessingException(self.tr(
                    "Could not create the output {}").format(destination))
            count = 0
            for feature in source.getFeatures(QgsFeatureRequest()):
                out = QgsFeature(fields)
                out.setGeometry(feature.geometry())
                out.setAttributes([feature.attribute(i) for i in kept])
                sink.addFeature(out, QgsFeatureSink.FastInsert)
                count += 1
            del sink  # flush and close the file
            feedback.pushInfo(self.tr("Footprints converted to {}").format(dest_id))
            return dest_id, count
        finally:
            del source


def _is_set(parameters, name):
    """True when an optional parameter has a value."""
    return parameters.get(name) not in (None, "")


def _is_plain_path(destination):
    """True for a plain file path (not ``ogr:``, ``postgis:``, ``memory:`` URIs)."""
    head = destination.split(":", 1)[0]
    return not (":" in destination and len(head) > 1 and not os.path.isabs(destination))


def _quote(arg):
    """Quote a command-line argument for the log."""
    return arg if arg and all(c.isalnum() or c in "-_./:,=+" for c in arg) else json.dumps(arg)


def _feature_count(path):
    """Number of features of a vector file, or ``None`` when QGIS cannot open it."""
    layer = QgsVectorLayer(path, "count", "ogr")
    try:
        return layer.featureCount() if layer.isValid() else None
    finally:
        del layer


class _Staging:
    """Hidden private folders beside the destinations, where geounet writes.

    geounet writes into ``.geounet-XXXX/`` in each destination's folder; the
    files are renamed onto their destinations only after a successful run, and
    the folders are removed in every case, so a failed, killed or cancelled run
    leaves nothing behind.
    """

    def __init__(self):
        self._dirs = {}

    def private_dir(self, folder):
        """Return (creating it once) the private folder inside ``folder``."""
        folder = os.path.abspath(folder)
        if folder not in self._dirs:
            if not os.path.isdir(folder):
                raise QgsProcessingException(
                    "The output folder {} does not exist; create it or choose another "
                    "output path".format(folder))
            try:
                self._dirs[folder] = tempfile.mkdtemp(prefix=".geounet-", dir=folder)
            except OSError as exc:
                raise QgsProcessingException(
                    "Cannot write in the output folder {}: {}".format(folder, exc)) from exc
        return self._dirs[folder]

    def path_for(self, destination):
        """Return the staging path for ``destination`` (same name, private folder)."""
        destination = os.path.abspath(destination)
        return os.path.join(self.private_dir(os.path.dirname(destination)),
                            os.path.basename(destination))

    @staticmethod
    def commit(staged, destination):
        """Move ``staged`` and its sidecar files (``.aux.xml``...) onto ``destination``."""
        folder, name = os.path.split(staged)
        target_folder = os.path.dirname(os.path.abspath(destination))
        base = os.path.basename(destination)
        for entry in os.listdir(folder):
            if entry == name or entry.startswith(name + "."):
                try:
                    os.replace(os.path.join(folder, entry),
                               os.path.join(target_folder, base + entry[len(name):]))
                except OSError as exc:
                    raise QgsProcessingException(
                        "Cannot write {}: {}".format(destination, exc)) from exc

    def cleanup(self):
        """Remove the private folders and everything still in them."""
        for path in self._dirs.values():
            shutil.rmtree(path, ignore_errors=True)
        self._dirs.clear()


def _child_environment():
    """The environment for geounet's interpreter: QGIS's minus its Python/GDAL settings."""
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV_VARS}
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _run_geounet(command, feedback, cwd):
    """Run geounet, relay its progress and log, and stop it when the user cancels.

    Args:
        command: The full command line.
        feedback: The algorithm's feedback object.
        cwd: Working folder of the child; a private one, because ``python -m``
            imports from the working folder first (a ``geounet`` folder there, as
            in a source checkout, would shadow the installed package).

    Raises:
        QgsProcessingException: when the run is cancelled, the interpreter
            cannot start or geounet exits with a non-zero status.
    """
    kwargs = {}
    if os.name == "nt":
        kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, env=_child_environment(), cwd=cwd,
                                text=True, encoding="utf-8", errors="replace", **kwargs)
    except OSError as exc:
        raise QgsProcessingException(
            "Could not start geounet with '{}': {}. Set the 'Python interpreter with geounet' "
            "parameter or {} to the python of geounet's environment.".format(
                command[0], exc.strerror or exc, PYTHON_ENV_VAR)) from exc

    lines = queue.Queue()

    def read():
        for line in proc.stdout:
            lines.put(line.rstrip("\r\n"))
        lines.put(None)

    reader = threading.Thread(target=read, name="geounet-output", daemon=True)
    reader.start()
    error = None
    tail = []
    announced = False
    try:
        while True:
            if feedback.isCanceled():
                _stop(proc)
                raise QgsProcessingException(
                    "The geounet run was cancelled; its partial outputs were removed.")
            try:
                line = lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break
            progress = _parse_progress(line)
            if progress is not None:
                done, total, stage = progress
                if stage == "predict" and total > 0:
                    if not announced:
                        feedback.pushInfo("geounet: predicting {} tiles".format(total))
                        announced = True
                    feedback.setProgress(PREDICT_SHARE * min(done, total) / total)
            elif line.startswith("Error: "):
                error = line[len("Error: "):].strip()
            elif line.strip():
                tail = (tail + [line])[-20:]
                feedback.pushConsoleInfo(line)
        status = proc.wait()
    finally:
        _stop(proc)  # only does something when leaving on an exception
        reader.join(5)
        proc.stdout.close()
    if status == 0:
        return
    if error:
        raise QgsProcessingException(error)
    missing = [ln[ln.index("No module named"):] for ln in tail if "No module named" in ln]
    if missing:
        raise QgsProcessingException(
            "'{}' cannot run geounet ({}): set the 'Python interpreter with geounet' "
            "parameter or {} to the python of the environment where geounet is "
            "installed.".format(command[0], missing[-1], PYTHON_ENV_VAR))
    raise QgsProcessingException(
        "geounet (run with '{}') stopped with exit status {}: {}".format(
            command[0], status, tail[-1] if tail else "no message"))


def _parse_progress(line):
    """Return ``(done, total, stage)`` for a geounet JSON progress line, else ``None``."""
    if not line.startswith("{"):
        return None
    try:
        item = json.loads(line)
        return int(item["done"]), int(item["total"]), str(item.get("stage", ""))
    except (ValueError, KeyError, TypeError):
        return None


def _stop(proc):
    """Ask geounet to stop (SIGTERM: it removes its partial outputs), then kill it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    deadline = time.monotonic() + TERMINATE_GRACE_S
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        proc.wait()

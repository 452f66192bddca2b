"""Models-from-code entry point: MLflow copies and runs this file to build the pyfunc model.

It only names the model object; the class lives in ``pyfunc_model.py`` (shipped with the model
through ``code_paths``), so loading needs no pickled Python objects.
"""

from mlflow.models import set_model

from yolo_mlops.tracking.pyfunc_model import YoloDetectorModel

set_model(YoloDetectorModel())

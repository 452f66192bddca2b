"""Dataset preparation: download, safe extraction, dataset-YAML parsing, label validation.

Plain Python, numpy and OpenCV; no Kedro, no MLflow (the pipeline nodes call into this package).
"""

"""Compile the project's Kedro pipelines into Kubeflow Pipelines (KFP v2) specs.

``kedro kubeflow compile --pipeline training --image IMAGE --output pipeline.yaml``; see
docs/kubeflow.md. Modules: ``grouping`` (Kedro pipeline -> stage groups, pre-flight check),
``parameters`` (KFP parameter -> Kedro parameter mapping), ``components`` (KFP components),
``compiler`` (the KFP pipeline), ``task`` (what a task runs), ``cli`` (the Kedro command).

Nothing is imported here: the tasks import ``yolo_mlops.kubeflow.task`` while kfp's executor
is itself being imported, and importing the compiler (kfp.compiler) then would be circular.
This package never imports mlflow (the tracking layer does).
"""

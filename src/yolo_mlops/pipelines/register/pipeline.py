"""The ``register`` pipeline: one node, ``register_model`` (tag ``register``), after ``export``."""

from kedro.pipeline import Node, Pipeline

from yolo_mlops.pipelines.register.nodes import register_model


def create_pipeline(**kwargs) -> Pipeline:
    """Log the best checkpoint and its exported files as an MLflow model, register it, apply the
    promotion gate."""
    return Pipeline(
        [
            Node(
                register_model,
                inputs=[
                    "model_checkpoint",
                    "metrics",
                    "exported_models",
                    "export_report",
                    "params:register",
                ],
                outputs="registration",
                name="register_model",
                tags=["register"],
            )
        ]
    )

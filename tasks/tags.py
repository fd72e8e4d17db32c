"""The MLflow tag names fedsweep writes (tasks/track.py) and reads (cli/compare.py).

No Prefect import here: the compare command reads MLflow without starting Prefect.
"""

SWEEP_KEY, CELL_KEY = "fedsweep.sweep_key", "fedsweep.cell_key"
SUPERSEDED_BY = "fedsweep.superseded_by"

# MLflow 3's UI opens an experiment in its GenAI view unless this experiment tag says otherwise (the
# values its UI knows, read from MLflow 3.17's UI code: genai_development, custom_model_development,
# finetuning); ours are training runs.
EXPERIMENT_KIND, TRAINING = "mlflow.experimentKind", "custom_model_development"
# Tags of a cell's child run that the runs table can group by: tag -> the param it comes from.
GROUP_TAGS = {
    "strategy": "choice.strategy",
    "selection": "choice.selection",
    "dataset": "choice.dataset",
    "partition": "choice.partition",
    "model": "choice.model",
    "num_clients": "num_clients",
}


def group_tags(params: dict) -> dict[str, str]:
    """A cell's grouping tags (`strategy=fedprox`, `num_clients=50`, ...) from its params."""
    return {tag: str(params[param]) for tag, param in GROUP_TAGS.items() if param in params}

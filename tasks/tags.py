"""The MLflow tag names fedsweep writes (tasks/track.py) and reads (cli/compare.py).

No Prefect import here: the compare command reads MLflow without starting Prefect.
"""

SWEEP_KEY, CELL_KEY = "fedsweep.sweep_key", "fedsweep.cell_key"
SWEEP_NAME = (
    "fedsweep.sweep"  # the experiment of a sweep: its name (cli/ui.py finds fedsweep's experiments by it)
)
SUPERSEDED_BY = "fedsweep.superseded_by"

# What an experiment is (values from MLflow's UI code: genai_development, custom_model_development,
# finetuning); ours are training runs. MLflow 3.17's UI no longer reads it to choose the view an
# experiment opens in (a switch kept in the browser does: cli/ui.py); other versions and tools may.
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

"""fedsweep: federated-learning experiments and sweeps that cannot lose work.

The domain library is plain torch: it never imports Prefect or MLflow.
"""

__version__ = "0.1.0"

"""`btq mlflow`: every job logged as an MLflow run from the global event stream (needs the `mlflow` extra).

Uses only MLflow's tracking client (`MlflowClient`) with explicit run ids, so one consumer logs jobs spread
over any number of workers. May import `btq.schemas` and the rest of the producer; never the worker or dspy.
"""

"""training: datasets, candidate models, evaluation, MLflow tracking and registry."""

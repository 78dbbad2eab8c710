"""The file MLflow runs to load a lead scoring model as a pyfunc (models-from-code).

`features.model.artifact.log_model` logs this file with every model; `mlflow models serve` and
`mlflow.pyfunc.load_model` run it (with the `features` package bundled beside it on the path).
leadscore itself never runs it: `load_model_scorer` reads the model's data files only.
"""

from features.model.artifact import set_pyfunc_model

set_pyfunc_model()

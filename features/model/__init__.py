"""The shipped model.

- `calibration`: `CalibratedModel`, a frozen classifier, its numpy form and one calibrator
- `compiled`: the numpy forms behind `CompiledModel` (`AdditiveLogistic`, `LeafBitvectors`,
  `WalkedTrees`), checked against scikit-learn when built
- `reasons`: the typical lead and the strongest effects
- `scorer`: `LeadScorer`, raw leads -> probability, score, grade, decision, reasons
- `artifact`: the model as an MLflow artifact (registry names, `models:/` URIs, files, logging,
  file hashes and sample leads, `load_model_scorer` with their checks); the only module here
  that imports mlflow and skops
- `pyfunc_entry`: the file MLflow runs to serve the model as a pyfunc
"""

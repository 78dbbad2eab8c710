"""features: the shared core that training/ and serving/ both import; it imports neither.

The top level is feature engineering only: `feature` (what a declared feature is), `attributes`
and `touchpoints` (each feature declared beside its computation), `touchpoint_arrays` (touchpoints
read into the core's arrays), `featurizer` (the scikit-learn style whole), `snapshots` (training
examples as of a moment) and `config`. `data/` is the data contract and the demo data, `policy/`
the policy maths, `model/` the shipped model.
"""

"""features: the lead data contract, validation, demo data, feature pipeline and scoring core.

Imports nothing else of leadscore's, so training/ and serving/ can both depend on it.
"""

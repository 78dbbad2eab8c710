"""Reports from the service's own database: the funnel (`funnel.py`: SQL sums finished by
`features.report`'s measures) and its wire shapes (`schemas.py`)."""

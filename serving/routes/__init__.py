"""HTTP routes, one module per resource; each only translates HTTP to function calls."""

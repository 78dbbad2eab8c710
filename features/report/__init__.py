"""Reports marketing and sales read: the funnel by channel, campaign, week, grade ...

`measures` declares each measure once (name, unit, plain-words description) for the CLI, the API
and the /ops tooltips; `funnel` computes them from the canonical frames (pure, no files);
`formats` renders a report as JSON, CSV or a terminal table; `cli` is the only module that reads
files (through the data contract).
"""

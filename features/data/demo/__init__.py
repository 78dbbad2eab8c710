"""Demo data: a realistic B2B funnel with a known true win probability per lead.

The process (documented in the README's demo-data section), one module per step:

1. `leads`: leads are created over two years with growth, monthly seasonality (quiet August and
   December, busy Q1 and autumn), fewer on weekends and mostly in office hours. Firmographics
   (industry, company size band, country and region, job title with seniority, email type, lead
   source) come out of a CRM export: some missing, placeholders ('Select', 'N/A'), case and
   spacing variants and raw channel spellings ('Google Ads', 'google / cpc').
2. `touchpoints`: the first touchpoint is the conversion that created the lead (form, download,
   webinar ...) in the lead-source channel. During the first 21 days each lead has Poisson
   touchpoints; how many depends on a hidden engagement level, and the share of high-intent
   actions (pricing page, form, demo request) on a hidden intent level.
3. `process`: the true win probability is a fixed logistic function of what is observable by day
   21: the attributes and the counts of each activity in the first 21 days (`true_logit_from_counts`).
   The hidden levels only shape what is observed, so at a 30-day snapshot nothing else predicts
   the outcome. Every share, effect and spelling the steps draw from is declared there, once.
4. `outcomes`: won ~ Bernoulli(p). Wins close between day 31 and day 110 (bigger companies later,
   senior buyers and early demo requests sooner: `process.win_close_shape`), so no win has closed
   at the 30-day snapshot and "won within 90 days of it" is "won". Won amounts are log-normal
   around `process.true_typical_amount` (size, industry, seniority, early behaviour). Most
   losses close at any time (some within a week); the rest stay open. Outcomes after the export
   date are not written.
5. `touchpoints` again: touchpoints after day 21 depend on p (likely buyers keep coming back) up
   to day 180.

Shapes (`process.SHAPES`, `generate(..., shape=)`): the same process with a few declared
differences (a shifted intercept, an identifier-like `referrer` column, date effects), what they
add drawn after everything the default draws, so the default shape's data never changes.

`dataset.generate` runs the steps with one seeded generator, `files.write` writes the tables and
`oracle.parquet` (`lead_id, true_win_probability, true_expected_amount, true_close_beta_a,
true_close_beta_b, true_median_days_to_close`; never a feature; `process.true_win_within` turns
them into the true chance of winning within a horizon after a snapshot), and `oracle` recomputes the
true probabilities from the files as `load_lead_data` reads them.
"""

from features.data.demo.dataset import DemoData, generate
from features.data.demo.files import DemoSummary, create_demo_data, progress_steps, write
from features.data.demo.oracle import oracle_from_observables

__all__ = [
    "DemoData",
    "DemoSummary",
    "create_demo_data",
    "generate",
    "oracle_from_observables",
    "progress_steps",
    "write",
]

"""operators: the package's Airflow operators, thin over the hooks, one module per stage or
backend (deploy, training, Ground Truth, Label Studio, S3 sync, load test, async inference, ...).

They may import triggers, hooks, links and the core, never the pipeline layer.
"""

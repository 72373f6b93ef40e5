"""sensors: the package's Airflow sensors (the Ground Truth labeling-job sensor).

They may import operators (a shared wait mixin), triggers, hooks, links and the core, never the
pipeline layer.
"""

"""pipeline: what knows ``PipelineConfig`` and the DAGs: the trigger form's params, the run
context, the stages' tasks and the ``train_and_deploy`` task group that ``dags/`` wires together.

It may import everything below it (operators, sensors, triggers, hooks, links, core); only
:mod:`sagemaker_vision.plugin` sits above it.
"""

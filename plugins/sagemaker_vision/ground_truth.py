"""Shim: the Ground Truth backend moved (issue 10) to ``core/labeling_job`` (request, states),
``core/labeling_inputs`` (manifest, categories, worker UI, CORS rules),
``hooks/ground_truth`` (S3 inputs, CORS), ``hooks/sagemaker`` (the labeling-job hook methods),
``operators/ground_truth``, ``sensors/ground_truth`` and ``links/sagemaker``. Removed by the lead."""

from sagemaker_vision.core.labeling_inputs import (  # noqa: F401  (shim, removed by the lead)
    DEFAULT_TEMPLATE_PATH,
    GROUND_TRUTH_CORS_RULE,
    MAX_MANIFEST_ATTRIBUTE_CHARS,
    cors_rule_allows_ground_truth,
    image_buckets,
    input_manifest_lines,
    label_categories_document,
    labeling_input_uris,
    merged_cors_rules,
    render_template,
)
from sagemaker_vision.core.labeling_job import (  # noqa: F401  (shim, removed by the lead)
    BOUNDING_BOX_LAMBDA_ACCOUNTS,
    LABELING_JOB_COMPLETE,
    LABELING_JOB_STATUS_QUERIES,
    MAX_LABELING_JOB_S,
    MTURK_CLOSED,
    PUBLIC_WORKFORCE_ACCOUNT,
    TASK_TIME_LIMIT_S,
    WAIT_MARGIN_S,
    bounding_box_lambda_arns,
    format_progress,
    job_failure_message,
    job_output_prefix,
    labeling_job_request,
    labeling_wait_budget_s,
    output_manifest_uri,
    public_workteam_arn,
    validate_workteam_arn,
    waiter_attempts,
)
from sagemaker_vision.hooks.ground_truth import ensure_cors, prepare_labeling_inputs  # noqa: F401  (shim)
from sagemaker_vision.hooks.sagemaker import SageMakerVisionHook as LabelingJobHook  # noqa: F401  (shim)
from sagemaker_vision.links.sagemaker import SageMakerLabelingJobLink  # noqa: F401  (shim)
from sagemaker_vision.operators.ground_truth import GroundTruthLabelingOperator  # noqa: F401  (shim)
from sagemaker_vision.sensors.ground_truth import GroundTruthLabelingJobSensor  # noqa: F401  (shim)

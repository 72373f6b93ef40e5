"""Every AWS operation the package calls, directly or through the amazon provider on its behalf.

``tests/unit/test_contract.py`` cross-checks this list against a static scan of ``plugins/`` and
``dags/`` (client method calls, paginators, waiters and waiter models, provider classes and hook
methods), so a new call without an entry here fails. ``tests/contract/plugin.py`` reports, at the
end of a session, how often each was captured at the client and whether any capture broke the
service model; an operation never captured is a gap.

``GAPS`` names the operations that no test exercises yet, each with the reason. A gap fails a
full run (see plugin.py) unless it is listed here, and an operation listed here that IS captured
fails too, so the list cannot go stale.
"""

from __future__ import annotations

# service.Operation -> where the package calls it
OPERATIONS: dict[str, str] = {
    # SageMaker: training
    "sagemaker.CreateTrainingJob": "operators/training.py (provider SageMakerTrainingOperator -> create_training_job)",
    "sagemaker.DescribeTrainingJob": ("operators/training.py, hooks/sagemaker.py; provider operator, "
                                      "hook.check_status and SageMakerTrigger"),
    "sagemaker.ListTrainingJobs": "operators/training.py (find the interval's job)",
    # SageMaker: models, endpoints
    "sagemaker.CreateModel": "hooks/sagemaker.py ensure_model",
    "sagemaker.DescribeModel": "hooks/sagemaker.py ensure_model",
    "sagemaker.DeleteModel": "hooks/teardown.py",
    "sagemaker.ListModels": "hooks/teardown.py (paginator)",
    "sagemaker.CreateEndpointConfig": "hooks/sagemaker.py ensure_endpoint_config, hooks/ab_test.py",
    "sagemaker.DescribeEndpointConfig": "hooks/sagemaker.py, hooks/ab_test.py, operators/deploy.py",
    "sagemaker.DeleteEndpointConfig": "hooks/teardown.py",
    "sagemaker.ListEndpointConfigs": "hooks/teardown.py (paginator)",
    "sagemaker.CreateEndpoint": "operators/deploy.py",
    "sagemaker.UpdateEndpoint": "operators/deploy.py, hooks/ab_test.py",
    "sagemaker.DescribeEndpoint": ("hooks/sagemaker.py, hooks/scaling.py, hooks/ab_test.py, pipeline/smoke_test.py, "
                                   "operators/load_test.py, operators/async_inference.py; waiters"),
    "sagemaker.DeleteEndpoint": "hooks/teardown.py",
    "sagemaker.ListEndpoints": "hooks/teardown.py (paginator)",
    "sagemaker.UpdateEndpointWeightsAndCapacities": "hooks/ab_test.py",
    "sagemaker.AddTags": "hooks/sagemaker.py, hooks/scaling.py",
    "sagemaker.ListTags": "hooks/sagemaker.py all_tags (hooks/teardown, scaling, ab_test, load_test)",
    # SageMaker: labeling
    "sagemaker.CreateLabelingJob": "operators/ground_truth.py",
    "sagemaker.DescribeLabelingJob": "hooks/sagemaker.py, waiters/ (sagemaker_vision.json), triggers/labeling_job.py",
    "sagemaker.StopLabelingJob": "operators/ground_truth.py (on_kill), hooks/sagemaker.py",
    # sagemaker-runtime
    "sagemaker-runtime.InvokeEndpoint": "hooks/sagemaker_runtime.py (smoke test, load-test invokers)",
    "sagemaker-runtime.InvokeEndpointAsync": "hooks/async_inference.py",
    # S3
    "s3.GetObject": ("hooks/s3.py, hooks/s3_sync.py, hooks/s3_upload_journal.py, hooks/endpoint_lease.py, "
                     "hooks/load_test.py, operators/label_studio.py, triggers/endpoint_lease.py"),
    "s3.PutObject": ("hooks/s3.py, hooks/s3_sync.py, hooks/s3_upload_journal.py, hooks/endpoint_lease.py, "
                     "operators/load_test.py"),
    "s3.HeadObject": ("hooks/s3.py, hooks/s3_sync.py, triggers/async_inference.py "
                      "(hooks/s3.head_object_if_exists_async)"),
    "s3.CopyObject": "hooks/s3_sync.py, pipeline/label.py",
    "s3.DeleteObjects": "hooks/s3_transfer.py",
    "s3.ListMultipartUploads": "hooks/s3_upload_journal.py (paginator: a killed sync's open uploads under dest)",
    "s3.ListParts": "hooks/s3_upload_journal.py (paginator: when an open upload was last written)",
    "s3.AbortMultipartUpload": "hooks/s3_upload_journal.py (a killed sync's idle uploads)",
    "s3.ListObjectsV2": "hooks/s3.py, hooks/s3_sync.py, hooks/load_test.py (paginator); S3Hook.list_keys",
    # No s3.HeadBucket: hooks/sagemaker.py's SageMakerVisionHook.check_s3_url checks the input channels with
    # HeadObject (IAM authorises HeadBucket as an unprefixed s3:ListBucket, which is not granted).
    "s3.GetBucketCors": "hooks/ground_truth.py (CORS rule before CreateLabelingJob)",
    "s3.PutBucketCors": "hooks/ground_truth.py (CORS rule before CreateLabelingJob)",
    # Application Auto Scaling
    "application-autoscaling.RegisterScalableTarget": "hooks/scaling.py",
    "application-autoscaling.PutScalingPolicy": "hooks/scaling.py",
    "application-autoscaling.DescribeScalableTargets": "hooks/teardown.py (paginator), hooks/scaling.py",
    "application-autoscaling.DescribeScalingPolicies": "hooks/teardown.py (paginator), hooks/scaling.py",
    "application-autoscaling.DeleteScalingPolicy": "hooks/teardown.py, hooks/scaling.py",
    "application-autoscaling.DeregisterScalableTarget": "hooks/teardown.py, hooks/scaling.py",
    # CloudWatch
    "cloudwatch.PutMetricAlarm": ("hooks/sagemaker.py (blue/green rollback alarm), "
                                  "hooks/scaling.py (async scale from zero)"),
    "cloudwatch.DescribeAlarms": "hooks/teardown.py",
    "cloudwatch.DeleteAlarms": "hooks/teardown.py",
    # No CloudWatch Logs: pipeline/tasks.py builds the training operator with print_log=False (and deferrable),
    # so the provider never calls logs.DescribeLogStreams / logs.GetLogEvents; test_contract.py
    # checks that every print_log= in the package stays False.
}

# Provider classes the package uses -> the operations they send on its behalf.
PROVIDER_CLASSES: dict[str, list[str]] = {
    "SageMakerTrainingOperator": ["sagemaker.CreateTrainingJob", "sagemaker.DescribeTrainingJob",
                                  # check_training_config -> check_s3_url (SageMakerVisionHook's):
                                  # the channel's object, or its prefix
                                  "s3.ListObjectsV2", "s3.HeadObject"],
    "SageMakerTrigger": ["sagemaker.DescribeTrainingJob"],
    "SageMakerHook": [],  # its methods are scanned by name (HOOK_METHODS / operation names)
    "S3Hook": [],
    "AwsGenericHook": [],  # links: only its get_session, for the client's region and partition
    "AwsBaseHook": [], "AwsBaseHookMixin": [], "AwsBaseOperator": [], "AwsBaseSensor": [],
    "AwsBaseWaiterTrigger": [],  # sends what its waiter model says (scanned: "operation" entries)
    "BaseBotoWaiter": [],
}

# Provider hook methods the package calls whose names are not operation names -> operations.
HOOK_METHODS: dict[str, list[str]] = {
    "list_keys": ["s3.ListObjectsV2"],
    "check_for_key": ["s3.HeadObject"],  # S3Hook.check_for_key -> head_object
    "check_for_prefix": ["s3.ListObjectsV2"],  # S3Hook.check_for_prefix -> list_prefixes
    "get_head_object_async": ["s3.HeadObject"],
    "check_status": ["sagemaker.DescribeTrainingJob"],
    "get_waiter": [],  # the waiter's operations are scanned from its name / model
    "get_conn": [], "get_async_conn": [], "get_client_type": [], "get_session": [], "get_credentials": [],
    "get_connection": [], "aget_connection": [], "parse_s3_url": [], "generate_presigned_url": [],
}

# Attribute calls in the package that share a name with an AWS operation but are not AWS calls.
NOT_AWS: dict[str, str] = {
    "search": ("re.search / compiled-pattern .search (core/validate.py, core/label_studio.py, "
               "core/manifest_refs.py, pipeline/manifests.py)"),
}

# Operations no test exercises yet -> why. Must stay in step with the capture (see module doc).
GAPS: dict[str, str] = {
}

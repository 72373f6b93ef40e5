"""The training stage's hook: the package's SageMaker hook, with a channel check the project's IAM role
can pass."""

from __future__ import annotations

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.common.compat.sdk import AirflowException

from sagemaker_vision.hooks import s3
from sagemaker_vision.hooks.sagemaker import SageMakerVisionHook


class ChannelCheckingSageMakerHook(SageMakerVisionHook):
    """The package's SageMaker hook (the one not-found rule: :meth:`find`), whose pre-flight check of
    the input channels sends no ``HeadBucket``.

    The provider checks each channel with ``HeadBucket`` first, which IAM authorises as
    ``s3:ListBucket`` with no ``s3:prefix``: only a grant to list the whole bucket allows it. The
    Airflow role lists only under the project prefix (include/iam/), so the check reads the
    channel's object (``HeadObject``: the manifest) or, for a prefix channel, lists under it.
    """

    def check_s3_url(self, s3url: str) -> bool:
        bucket, key = S3Hook.parse_s3_url(s3url)
        if key and (s3.head_object_if_exists(self.s3_hook.get_conn(), bucket, key) is not None
                    or self.s3_hook.check_for_prefix(prefix=key, bucket_name=bucket, delimiter="/")):
            return True
        raise AirflowException(f"The input S3 Key or Prefix {s3url} does not exist in the Bucket {bucket}")

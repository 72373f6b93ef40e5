"""Moved (issue 10): the plan and the sync's model to :mod:`sagemaker_vision.core.s3_sync`, the state and
journal models to :mod:`sagemaker_vision.core.s3_sync_state`, the sync itself to
:mod:`sagemaker_vision.hooks.s3_sync` (transfers: ``hooks.s3_transfer``; the upload journal:
``hooks.s3_upload_journal``), the operator to :mod:`sagemaker_vision.operators.s3_sync`.
This shim is removed by the lead."""

from sagemaker_vision.core.s3_responses import s3_clock  # noqa: F401  (shim, removed by the lead)
from sagemaker_vision.core.s3_sync import (  # noqa: F401  (shim, removed by the lead)
    COMPARE_MODES,
    COPY_OBJECT_LIMIT,
    DELETE_BATCH,
    MAX_FAILURES_IN_MESSAGE,
    MD5_METADATA,
    SMALL_FILE_LIMIT,
    SSE_MODES,
    Compare,
    ObjectInfo,
    S3SyncError,
    SyncFailure,
    SyncPlan,
    content_type,
    encryption_args,
    key_name_problem,
    md5_file,
    needs_head,
    parse_include,
    plan_sync,
    refuse_unsafe_names,
    resolve_endpoints,
    same_content,
)
from sagemaker_vision.core.s3_sync_state import (  # noqa: F401  (shim, removed by the lead)
    HEARTBEAT_SECONDS,
    JOURNAL_SUFFIX,
    JOURNAL_VERSION,
    STALE_UPLOAD_SECONDS,
    STATE_SUFFIX,
    STATE_VERSION,
    apply_state,
    attempt_is_dead,
    journal_key,
    state_key,
    task_owner,
)
from sagemaker_vision.hooks.s3_sync import (  # noqa: F401  (shim, removed by the lead)
    list_local,
    list_s3,
    load_state,
    sync,
)
from sagemaker_vision.hooks.s3_upload_journal import (  # noqa: F401  (shim, removed by the lead)
    UploadJournal,
    abort_stale_uploads,
)
from sagemaker_vision.operators.s3_sync import S3SyncOperator  # noqa: F401  (shim, removed by the lead)

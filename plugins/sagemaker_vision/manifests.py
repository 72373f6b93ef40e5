"""Shim (removed by the lead at the end of the move): ``sagemaker_vision.manifests`` is ``pipeline.manifests``.

The old module object is replaced by the new one, so patches of either name reach the one definition.
"""

import sys

from sagemaker_vision.pipeline import manifests as _manifests

sys.modules[__name__] = _manifests

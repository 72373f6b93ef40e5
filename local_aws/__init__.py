"""local_aws: a development-only AWS emulator (moto in-process plus SageMaker extensions).

Never deployed. See local_aws/README.md for what is emulated, what is faked and what is not.

    with Emulator(transition_seconds=0.3) as emu:
        boto3.client("sagemaker", endpoint_url=emu.endpoint_url, ...)
"""

from .control import Control, ControlError
from .env import airflow_env
from .server import Emulator

__all__ = ["Control", "ControlError", "Emulator", "airflow_env"]

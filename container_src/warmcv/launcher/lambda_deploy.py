"""Package the Lambda handlers and create or update the functions the pipeline invokes.

The zip holds only the modules the handlers import (stdlib + boto3 at run time, which Lambda's Python
runtime provides), with their package `__init__` files, so the handler path is the module's own:
`warmcv.launcher.handlers.best_hyperparameters`. Building the zip is deterministic (fixed timestamps,
sorted entries), so an unchanged package gives the same CodeSha256 and `deploy` skips the update.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import warmcv

log = logging.getLogger(__name__)
PACKAGE_ROOT = Path(warmcv.__file__).resolve().parent.parent
# Every file the handlers need, relative to the package root; a test checks this is import-closed.
LAMBDA_FILES: tuple[str, ...] = (
    "warmcv/__init__.py",
    "warmcv/aws/__init__.py",
    "warmcv/aws/tags.py",
    "warmcv/cv/__init__.py",
    "warmcv/cv/quality.py",
    "warmcv/launcher/__init__.py",
    "warmcv/launcher/handlers.py",
    "warmcv/launcher/warm_pools.py",
)
RUNTIME = "python3.12"
HANDLER_MODULE = "warmcv.launcher.handlers"


@dataclass(frozen=True)
class LambdaFunction:
    name: str
    handler: str  # function name in HANDLER_MODULE
    description: str
    timeout: int  # seconds
    memory: int = 256

    @property
    def handler_path(self) -> str:
        return f"{HANDLER_MODULE}.{self.handler}"


def functions(best_name: str, release_name: str) -> tuple[LambdaFunction, LambdaFunction]:
    return (
        LambdaFunction(best_name, "best_hyperparameters",
                       "warmcv: the best trial's hyperparameters and CV statistics for the final training", 120),
        LambdaFunction(release_name, "release_warm_pools",
                       "warmcv: release the warm pools a pipeline run left behind", 600),
    )


def build_zip() -> bytes:
    """The deployment package, byte-identical for identical sources."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in sorted(LAMBDA_FILES):
            info = zipfile.ZipInfo(relative, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (PACKAGE_ROOT / relative).read_bytes())
    return buffer.getvalue()


def code_sha256(package: bytes) -> str:
    """What Lambda reports as CodeSha256: base64 of the SHA-256 of the zip."""
    return base64.b64encode(hashlib.sha256(package).digest()).decode()


def deploy(client: Any, function: LambdaFunction, role_arn: str, package: bytes | None = None) -> str:
    """Create the function, or update its code and configuration; returns its ARN."""
    from botocore.exceptions import ClientError

    package = package if package is not None else build_zip()
    config = {"Role": role_arn, "Handler": function.handler_path, "Runtime": RUNTIME, "Timeout": function.timeout,
              "MemorySize": function.memory, "Description": function.description}
    try:
        current = client.get_function(FunctionName=function.name)["Configuration"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        created = client.create_function(FunctionName=function.name, Code={"ZipFile": package},
                                         Publish=True, **config)
        log.info("created Lambda function %s", function.name)
        return created["FunctionArn"]
    if current.get("CodeSha256") != code_sha256(package):
        client.update_function_code(FunctionName=function.name, ZipFile=package, Publish=True)
        client.get_waiter("function_updated_v2").wait(FunctionName=function.name)
        log.info("updated the code of Lambda function %s", function.name)
    if any(current.get(key) != value for key, value in config.items()):
        client.update_function_configuration(FunctionName=function.name, **config)
        log.info("updated the configuration of Lambda function %s", function.name)
    return current["FunctionArn"]

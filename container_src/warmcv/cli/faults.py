"""One line, not a traceback, for faults of the command's surroundings: AWS set-up and the file system.

A missing credential, a missing region, an expired session or a full disk is nothing the user can
read out of 50-80 lines of botocore's or SQLAlchemy's stack, and nothing warmcv can fix; each becomes
a sentence that says what is wrong and how to provide what is missing. Anything not recognised here
keeps its traceback: that is our bug, and its stack is what fixes it.
"""

from __future__ import annotations

from collections.abc import Iterator

from warmcv.errors import StorageError, UserInputError
from warmcv.files import storage_fault

# How boto3 finds credentials, in its order (boto3 guide "Credentials"; botocore's credential provider
# chain): what a user can do about a NoCredentialsError.
CREDENTIALS_HELP = (
    "provide them in one of the ways boto3 looks for them: the environment variables AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones); a profile in ~/.aws/credentials or "
    "~/.aws/config (`aws configure`, or `aws sso login --profile NAME` for IAM Identity Center), chosen with "
    "AWS_PROFILE=NAME; or the role of the instance or container this runs on"
)
REGION_HELP = ("give --region (or aws.region in the config file), or set AWS_DEFAULT_REGION, or region in "
               "~/.aws/config")
# Error codes with which AWS refuses the credentials themselves (not a permission): IAM/STS/SageMaker/S3.
_REFUSED_CREDENTIALS = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
                        "InvalidSignatureException", "SignatureDoesNotMatch", "InvalidAccessKeyId", "AuthFailure",
                        "RequestExpired"}
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def aws_setup_problem(error: BaseException) -> UserInputError | None:
    """A UserInputError telling how to fix the AWS set-up, if `error` (or what it wraps) is botocore saying so."""
    try:
        from botocore import exceptions as aws
    except ImportError:
        return None
    for cause in _causes(error):
        if isinstance(cause, aws.NoCredentialsError):
            return UserInputError(f"no AWS credentials found: {CREDENTIALS_HELP}")
        if isinstance(cause, aws.PartialCredentialsError):
            return UserInputError(f"incomplete AWS credentials ({cause}): {CREDENTIALS_HELP}")
        if isinstance(cause, aws.ProfileNotFound):
            return UserInputError(f"{cause} in ~/.aws/config or ~/.aws/credentials: set AWS_PROFILE to a profile "
                                  "that exists (`aws configure list-profiles`), or unset it")
        if isinstance(cause, (aws.UnauthorizedSSOTokenError, aws.SSOTokenLoadError, aws.TokenRetrievalError)):
            return UserInputError(f"the AWS SSO session cannot be used ({cause}): run `aws sso login` with the "
                                  "profile in use, then the command again")
        if isinstance(cause, aws.CredentialRetrievalError):
            return UserInputError(f"AWS credentials could not be obtained ({cause}): {CREDENTIALS_HELP}")
        if isinstance(cause, aws.NoRegionError):
            return UserInputError(f"no AWS region: {REGION_HELP}")
        if isinstance(cause, (aws.EndpointConnectionError, aws.ConnectTimeoutError)):
            return UserInputError(f"AWS cannot be reached ({cause}): check the network connection, the region, "
                                  "and AWS_ENDPOINT_URL if it is set")
        if isinstance(cause, aws.ClientError):
            code = cause.response.get("Error", {}).get("Code", "")
            message = cause.response.get("Error", {}).get("Message", "")
            operation = getattr(cause, "operation_name", "the request")
            if code in _REFUSED_CREDENTIALS:
                return UserInputError(f"AWS refused the credentials in use ({code}: {message}); they may have "
                                      f"expired: renew them (`aws sso login`, or new keys), then run the command again")
            if code in _DENIED:
                return UserInputError(f"AWS denied {operation} ({code}: {message}): the identity in use needs "
                                      "permission for it")
    return None


def user_facing_fault(error: BaseException) -> UserInputError | None:
    """The one-line error for a fault of the surroundings (AWS set-up, the file system), or None (our bug)."""
    if isinstance(error, StorageError):
        return error
    return aws_setup_problem(error) or storage_fault(error)

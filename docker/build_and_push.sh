#!/usr/bin/env bash
# Build the warmcv image and push it to Amazon ECR, tagged with the git commit and a moving tag.
#
#   docker/build_and_push.sh [OPTIONS] [-- EXTRA DOCKER BUILD ARGUMENTS]
#
# Steps: find the account (STS) -> create the ECR repository if it is missing (scan on push, mutable
# tags so the moving tag can move) -> log Docker in to the registry -> build from the repository root
# -> tag <registry>/<repository>:<git sha> and :<moving tag> -> push both -> read the digest back from
# ECR. Prints the result last, as shell assignments:
#
#   IMAGE_URI=<account>.dkr.ecr.<region>.amazonaws.com/warmcv:<sha>       what a pipeline should use
#   IMAGE_DIGEST=sha256:...
#   IMAGE_URI_DIGEST=<account>.dkr.ecr.<region>.amazonaws.com/warmcv@sha256:...   immutable reference
#   IMAGE_MOVING_URI=<account>.dkr.ecr.<region>.amazonaws.com/warmcv:latest
#
# Options (environment variable in brackets):
#   --repository NAME   ECR repository [WARMCV_REPOSITORY], default warmcv
#   --region REGION     [AWS_REGION, AWS_DEFAULT_REGION], else the AWS CLI's configured region
#   --tag TAG           the moving tag [WARMCV_MOVING_TAG], default latest
#   --platform P        target platform [WARMCV_PLATFORM], default linux/amd64 (SageMaker's ml.* x86
#                       instances; an image built on an arm64 laptop would not start there)
#   --base-image IMAGE  the Dockerfile's BASE_IMAGE build argument [BASE_IMAGE]
#   --env-file PATH     also write the result lines to PATH (buildspec.yml sources it)
#   --no-push           build and tag locally as <repository>:<sha> and :<tag>; no AWS call at all
#   --dry-run           print the commands instead of running them; no AWS call, no build
#   -h, --help          this text
#
# Needs: git (or CODEBUILD_RESOLVED_SOURCE_VERSION), docker, and (unless --no-push/--dry-run) the AWS CLI
# v2 with credentials allowed ecr:DescribeRepositories, ecr:CreateRepository, ecr:GetAuthorizationToken,
# ecr:BatchCheckLayerAvailability, ecr:InitiateLayerUpload, ecr:UploadLayerPart,
# ecr:CompleteLayerUpload, ecr:PutImage, ecr:DescribeImages, sts:GetCallerIdentity.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; }
die() { echo "build_and_push: $*" >&2; exit 1; }

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
repository=${WARMCV_REPOSITORY:-warmcv}
region=${AWS_REGION:-${AWS_DEFAULT_REGION:-}}
moving_tag=${WARMCV_MOVING_TAG:-latest}
platform=${WARMCV_PLATFORM:-linux/amd64}
base_image=${BASE_IMAGE:-}
env_file=""
push=true
dry_run=false
extra_build_args=()

while (($#)); do
  case "$1" in
    --repository) repository=${2:?--repository needs a value}; shift 2 ;;
    --region) region=${2:?--region needs a value}; shift 2 ;;
    --tag) moving_tag=${2:?--tag needs a value}; shift 2 ;;
    --platform) platform=${2:?--platform needs a value}; shift 2 ;;
    --base-image) base_image=${2:?--base-image needs a value}; shift 2 ;;
    --env-file) env_file=${2:?--env-file needs a value}; shift 2 ;;
    --no-push) push=false; shift ;;
    --dry-run) dry_run=true; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; extra_build_args=("$@"); break ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

# ECR repository names: lowercase letters, digits and ._-/ separators; tags: up to 128 of [A-Za-z0-9_.-].
[[ $repository =~ ^[a-z0-9]+([._/-][a-z0-9]+)*$ ]] || die "repository name '$repository' is not valid for ECR"
[[ $moving_tag =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "tag '$moving_tag' is not a valid image tag"

# Print a command (shell-quoted) and run it, or only print it in a dry run.
run() {
  printf '+' >&2
  printf ' %q' "$@" >&2
  printf '\n' >&2
  $dry_run || "$@"
}

source_tag() {
  local sha=""
  if sha=$(git -C "$repo_root" rev-parse --short=12 HEAD 2>/dev/null); then
    # Tracked changes that are not committed: the tag must not claim to be that commit.
    if [[ -n $(git -C "$repo_root" status --porcelain --untracked-files=no 2>/dev/null) ]]; then
      sha="$sha-dirty"
    fi
  elif [[ -n ${CODEBUILD_RESOLVED_SOURCE_VERSION:-} ]]; then
    sha=${CODEBUILD_RESOLVED_SOURCE_VERSION:0:12}
  else
    die "cannot tell the commit: not a git checkout and CODEBUILD_RESOLVED_SOURCE_VERSION is not set"
  fi
  echo "$sha"
}

sha_tag=$(source_tag)

if $push; then
  if [[ -z $region ]] && ! $dry_run; then
    region=$(aws configure get region 2>/dev/null || true)
  fi
  [[ -n $region ]] || { $dry_run && region="<region>"; } || die "no AWS region: pass --region or set AWS_REGION"
  if $dry_run; then
    account=${AWS_ACCOUNT_ID:-<account-id>}
  else
    account=$(aws sts get-caller-identity --query Account --output text) || die "cannot call STS; are AWS credentials set?"
  fi
  domain=amazonaws.com
  [[ $region == cn-* ]] && domain=amazonaws.com.cn
  registry=$account.dkr.ecr.$region.$domain
  image=$registry/$repository
else
  image=$repository
fi

if $push; then
  if $dry_run; then
    run aws ecr describe-repositories --region "$region" --repository-names "$repository"
  elif ! describe_error=$(aws ecr describe-repositories --region "$region" --repository-names "$repository" 2>&1 >/dev/null); then
    if [[ $describe_error == *RepositoryNotFoundException* ]]; then
      echo "ECR repository $repository does not exist in $region: creating it" >&2
      run aws ecr create-repository --region "$region" --repository-name "$repository" \
        --image-scanning-configuration scanOnPush=true --image-tag-mutability MUTABLE >/dev/null
    else
      die "cannot look up ECR repository $repository: $describe_error"
    fi
  fi
  echo "+ aws ecr get-login-password --region $region | docker login --username AWS --password-stdin $registry" >&2
  if ! $dry_run; then
    aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry" >/dev/null
  fi
fi

build=(docker build --platform "$platform"
  --label "org.opencontainers.image.revision=$sha_tag"
  -t "$image:$sha_tag" -t "$image:$moving_tag")
[[ -n $base_image ]] && build+=(--build-arg "BASE_IMAGE=$base_image")
((${#extra_build_args[@]})) && build+=("${extra_build_args[@]}")
run "${build[@]}" "$repo_root"

if $push; then
  run docker push "$image:$sha_tag"
  run docker push "$image:$moving_tag"
  if $dry_run; then
    digest="<digest>"
  else
    digest=$(aws ecr describe-images --region "$region" --repository-name "$repository" \
      --image-ids "imageTag=$sha_tag" --query 'imageDetails[0].imageDigest' --output text)
    [[ $digest == sha256:* ]] || die "ECR returned no digest for $image:$sha_tag (got '$digest')"
  fi
else
  if $dry_run; then
    digest="<image-id>"
  else
    digest=$(docker image inspect --format '{{.Id}}' "$image:$sha_tag")
  fi
fi

result="IMAGE_URI=$image:$sha_tag
IMAGE_DIGEST=$digest
IMAGE_URI_DIGEST=$image@$digest
IMAGE_MOVING_URI=$image:$moving_tag"
$push || result="IMAGE_URI=$image:$sha_tag
IMAGE_ID=$digest
IMAGE_MOVING_URI=$image:$moving_tag"
echo "$result"
if [[ -n $env_file ]]; then
  if $dry_run; then echo "(dry run: $env_file not written)" >&2; else echo "$result" >"$env_file"; fi
fi

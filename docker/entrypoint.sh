#!/bin/sh
# The image's ENTRYPOINT (exec form): picks what the container runs from its first argument, then
# replaces itself with that program (exec), so the program is PID 1 and receives SageMaker's SIGTERM.
#
#   (no argument)     SageMaker SDK v3 local mode passes none and expects training: same as `train`
#   train             SageMaker training: the sagemaker-training toolkit's `train`, which runs
#                     $SAGEMAKER_TRAINING_MODULE (warmcv.modes.entry:train) in its own process
#   serve [OPTIONS]   batch transform and endpoints: `warmcv serve`
#   anything else     the `warmcv` command, e.g. a Processing job's
#                     `--failure-file /opt/ml/output/message prepare --data ... --target ... --out ...`
set -eu

if [ "$#" -eq 0 ]; then
    set -- train
fi

case "$1" in
    train)
        shift
        if [ "$#" -gt 0 ]; then
            echo "warmcv-entrypoint: 'train' takes no arguments (a training job reads" \
                 "/opt/ml/input/config/hyperparameters.json); got: $*" >&2
            exit 2
        fi
        exec train
        ;;
    serve)
        shift
        exec warmcv serve "$@"
        ;;
    *)
        exec warmcv "$@"
        ;;
esac

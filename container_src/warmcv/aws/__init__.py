"""Everything that talks to AWS (boto3/botocore only: the SageMaker SDK never enters the image)."""

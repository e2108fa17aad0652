"""warmcv: k-fold cross-validated hyperparameter tuning for LightGBM, warm on SageMaker and on one machine."""

__version__ = "0.1.0"

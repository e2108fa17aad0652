"""The bundled example: a census-like income table with what real data has and toy sets lack.

String categoricals with missing values, string class labels (">50K"), missing numbers, a skewed
target. `census.csv.gz` ships with the package; `make_census_like` regenerates it (and bigger or
smaller variants for tests and benchmarks) deterministically.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

EXAMPLE_FILE = "census.csv.gz"
EXAMPLE_TARGET = "income"

_EDUCATION = ["Preschool", "HS-grad", "Some-college", "Assoc", "Bachelors", "Masters", "Doctorate"]
_WORKCLASS = ["Private", "Self-emp", "Federal-gov", "Local-gov", "State-gov", "Without-pay"]
_OCCUPATION = ["Tech-support", "Craft-repair", "Sales", "Exec-managerial", "Prof-specialty", "Handlers-cleaners",
               "Machine-op", "Adm-clerical", "Farming-fishing", "Transport", "Protective-serv", "Other-service"]
_MARITAL = ["Never-married", "Married", "Divorced", "Separated", "Widowed"]
_REGION = ["North-America", "Europe", "Asia", "Latin-America", "Africa", "Oceania"]


def example_path() -> Path:
    """Path of the bundled example CSV (gzip)."""
    return Path(str(resources.files(__package__).joinpath(EXAMPLE_FILE)))


def load_example() -> pd.DataFrame:
    """The bundled census-like table (6,000 rows; target "income", ">50K" or "<=50K"), as a DataFrame."""
    return pd.read_csv(example_path())


def make_census_like(rows: int = 6000, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    education = rng.choice(len(_EDUCATION), rows, p=[0.02, 0.32, 0.24, 0.08, 0.2, 0.11, 0.03])
    age = np.clip(rng.normal(40, 13, rows), 17, 90).round()
    hours = np.clip(rng.normal(41, 12, rows), 1, 99).round()
    occupation = rng.integers(0, len(_OCCUPATION), rows)
    marital = rng.choice(len(_MARITAL), rows, p=[0.33, 0.46, 0.13, 0.03, 0.05])
    workclass = rng.choice(len(_WORKCLASS), rows, p=[0.7, 0.11, 0.04, 0.07, 0.07, 0.01])
    sex = rng.choice(["Male", "Female"], rows, p=[0.67, 0.33])
    region = rng.choice(len(_REGION), rows, p=[0.9, 0.03, 0.03, 0.02, 0.01, 0.01])
    capital_gain = np.where(rng.random(rows) < 0.08, rng.lognormal(8.5, 1.1, rows), 0.0).round()
    occupation_effect = np.array([0.4, 0.0, 0.2, 1.1, 1.0, -0.8, -0.4, -0.2, -0.7, -0.3, 0.3, -1.0])
    logit = (-5.2 + 0.55 * education + 0.045 * (age - 17) - 0.0006 * (age - 17) ** 2 + 0.03 * (hours - 40)
             + occupation_effect[occupation] + 1.3 * (marital == 1) + 0.3 * (sex == "Male")
             + 1.5 * (capital_gain > 5000) + rng.normal(0, 0.6, rows))
    income = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), ">50K", "<=50K")
    frame = pd.DataFrame({
        "age": age,
        "workclass": np.asarray(_WORKCLASS, dtype=object)[workclass],
        "education": np.asarray(_EDUCATION, dtype=object)[education],
        "marital_status": np.asarray(_MARITAL, dtype=object)[marital],
        "occupation": np.asarray(_OCCUPATION, dtype=object)[occupation],
        "sex": sex,
        "hours_per_week": hours,
        "capital_gain": capital_gain,
        "native_region": np.asarray(_REGION, dtype=object)[region],
        EXAMPLE_TARGET: income,
    })
    # Missing values where real exports have them: unknown occupation/workclass, unrecorded age/hours.
    for column, share in (("occupation", 0.05), ("workclass", 0.05), ("age", 0.02), ("hours_per_week", 0.03)):
        frame.loc[rng.random(rows) < share, column] = None
    return frame


def regenerate() -> None:
    """Rewrite the bundled file (run once by a maintainer; the output is committed)."""
    make_census_like().to_csv(Path(__file__).with_name(EXAMPLE_FILE), index=False,
                              compression={"method": "gzip", "mtime": 0})

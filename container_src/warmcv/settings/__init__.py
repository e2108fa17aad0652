"""Typed settings shared by the CLI, the Python API, a run folder's run.json and the launcher's config.

`choices` holds every enumerated value once (plain `Literal` types, importable without pydantic, so
argparse can list them cheaply); `base` turns pydantic's validation errors into one `UserInputError`
that names each key, its value and what is allowed; `run` holds the settings of a preparation and of a
local tuning run. pydantic, because it is the validation library the field uses (and the SageMaker SDK
v3 itself is built on): typed fields with bounds, unknown keys refused, JSON in and out, instead of
matching type hints as text.
"""

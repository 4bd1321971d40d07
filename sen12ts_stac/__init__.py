"""sen12ts-stac: make, check, distribute and train on SEN12TS-style datasets."""

__version__ = "0.1.0"

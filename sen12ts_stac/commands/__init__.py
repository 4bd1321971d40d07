"""The click commands, one module per command (in the manner of stactools' ``commands.py``):
options and output only, each over a library function of its package (``collect``, ``validate``,
``distribute``). :mod:`sen12ts_stac.cli` registers them and turns errors into one line."""

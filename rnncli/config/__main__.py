"""`python -m rnncli.config` prints the table of config file keys (docs/config.md)."""

from rnncli.config.settings import keys_table

print(keys_table(), end="")

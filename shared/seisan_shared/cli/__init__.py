"""The `seisan` command line: core commands here, service command groups from entry points."""

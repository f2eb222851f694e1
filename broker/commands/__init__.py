"""The operator's subcommands of the `warren` console script.

One module per command group, each with an `add_parser(subparsers)` that
`broker.cli.SUBCOMMANDS` lists:

- `broker.commands.config`: `warren config check|fmt|from-definitions|to-definitions|apply`
- `broker.commands.route`: `warren route` (offline routing under a file's topology)
- `broker.commands.publish`: `warren publish` and `warren consume`

Modules import only argparse at load time; trio, the client and the
configuration language are imported when a command runs, so `warren --help`
and `warren serve` stay quick. Shared plumbing (one-line errors, progress on a
terminal, `--header` parsing) is in `_common`; the apply engine in `apply`.
See docs/cli.md.
"""

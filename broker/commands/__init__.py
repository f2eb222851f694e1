"""The operator's subcommands of the `warren` console script.

One module per command group, each with an `add_parser(subparsers)` that
`broker.cli.SUBCOMMANDS` lists:

- `broker.commands.config`: `warren config check|fmt|from-definitions|to-definitions|apply`
- `broker.commands.route`: `warren route` (offline routing under a file's topology)
- `broker.commands.publish`: `warren publish` and `warren consume`
- `broker.commands.admin`: `warren list|purge|delete|close-connection|users|vhosts|
  permissions|definitions`, over the management HTTP API
- `broker.commands.cluster`: `warren cluster status`, a Warren cluster's leader and
  followers, over the management HTTP API

`api_client` is the management API's client (and where its address and
credentials come from: options, environment, profiles file); `diff` compares a
file with a broker, for `warren config diff` and `config apply --prune`.

Modules import only argparse at load time; trio, the client and the
configuration language are imported when a command runs, so `warren --help`
and `warren serve` stay quick. Shared plumbing (one-line errors, progress on a
terminal, `--header` parsing) is in `_common`; the apply engine in `apply`.
See docs/cli.md.
"""

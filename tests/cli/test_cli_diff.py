"""`warren config diff FILE` and `warren config apply --prune`.

On the in-process Warren and on the reference RabbitMQ (`target`). Each test
works in a vhost of its own, made through the API (so the files have no `vhost`
statement: on the shared reference a file that manages vhosts would find every
other vhost extra). Deleting users and vhosts for real (`--prune --yes` on a
file with user and vhost statements) is done on Warren only, which is this
test session's own; on the reference it is a dry run, and only our names are
looked at.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from cli_api_helpers import Target, q, run_on_a_terminal


def lines(stdout: str) -> list[str]:
    return stdout.splitlines()


def topology(t: Target) -> str:
    return (
        f"exchange {t.name('orders')} type topic durable\n"
        f"queue {t.name('billing')} durable\n"
        "    message-ttl 30s\n"
        f'bind {t.name("billing")} to {t.name("orders")} key "order.*"\n'
    )


def test_diff_apply_prune(warren, target: Target, tmp_path: Path) -> None:
    vhost = target.new_vhost()
    orders, billing = target.name("orders"), target.name("billing")
    conf = tmp_path / "a.conf"
    conf.write_text(topology(target))

    def diff(path: Path = conf, *extra: str):
        return warren("config", "diff", str(path), "--vhost", vhost, *target.api, *extra)

    before = diff()
    assert (before.returncode, before.stderr) == (1, "")
    assert lines(before.stdout) == [
        f"would-create exchange {orders}",
        f"would-create queue {billing}",
        f'would-create bind {billing} to {orders} key "order.*"',
        "3 would create; 0 present",
    ]
    applied = warren("config", "apply", str(conf), "--url", target.url(vhost), *target.api)
    assert applied.returncode == 0, applied.stderr
    same = diff()
    assert (same.returncode, same.stdout) == (0, "no differences: 3 present, nothing extra\n")

    # The broker gets more than the file says; a server-named queue and another
    # connection's exclusive queue (and its binding) are a client's, not extra.
    old, old_x = target.name("old"), target.name("old-x")
    target.declare(vhost, queues=(old,), exchanges=((old_x, "fanout"),),
                   bindings=((old, orders, "old.#"),))
    holder = target.connect(vhost)
    try:
        channel = holder.channel()
        named = channel.queue_declare("", exclusive=False).method.queue
        private = target.name("private")
        channel.queue_declare(private, exclusive=True)
        channel.queue_bind(private, orders, "private")
        channel.queue_bind(named, orders, "named")

        more = diff()
        assert more.returncode == 1
        assert lines(more.stdout) == [
            f'extra        bind {old} to {orders} key "old.#"',
            f"extra        queue {old}",
            f"extra        exchange {old_x}",
            "3 extra; 3 present",
        ]
        as_json = [json.loads(line) for line in lines(diff(conf, "--json").stdout)]
        assert as_json[1] == {"status": "extra", "kind": "queue", "name": old,
                              "declaration": f"queue {old}"}

        # A file that disagrees: conflicts named as apply names them.
        changed = tmp_path / "changed.conf"
        changed.write_text(topology(target).replace(" durable\n    message-ttl 30s",
                                                    "\n    message-ttl 1m\n    x-note hello"))
        conflicting = diff(changed)
        assert conflicting.returncode == 1
        assert lines(conflicting.stdout)[0] == (
            f"conflict     queue {billing}: durable is 'true' on the broker, 'false' in the "
            "file; x-message-ttl is '30000' on the broker, '60000' in the file; x-note is not "
            "set on the broker, 'hello' in the file (the broker does not compare this "
            "argument: apply reports it present and cannot change it)"
        )

        # --prune: refused without a terminal and --yes, then a dry run; nothing goes.
        apply = ["config", "apply", str(conf), "--url", target.url(vhost), *target.api,
                 "--prune"]
        refused = warren(*apply)
        assert (refused.returncode, refused.stdout) == (2, "")
        assert refused.stderr == (
            f'warren config apply: --prune would delete 3 objects (bind {old} to {orders} key '
            f'"old.#", queue {old}, exchange {old_x}); stdin is not a terminal to confirm it: '
            "pass --yes (see them with --dry-run or `warren config diff`); nothing was changed\n"
        )
        dry = warren(*apply, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert lines(dry.stdout)[-4:] == [
            f'would-delete bind {old} to {orders} key "old.#"',
            f"would-delete queue {old}",
            f"would-delete exchange {old_x}",
            "dry run, nothing changed: 3 present, 3 would delete",
        ]
        assert target.queue_exists(old, vhost) and target.exchange_exists(old_x, vhost)

        pruned = warren(*apply, "--yes")
        assert pruned.returncode == 0, pruned.stderr
        assert lines(pruned.stdout) == [
            f"present      exchange {orders}",
            f"present      queue {billing}",
            f'present      bind {billing} to {orders} key "order.*"',
            f'deleted      bind {old} to {orders} key "old.#"',
            f"deleted      queue {old}",
            f"deleted      exchange {old_x}",
            "3 present, 3 deleted",
        ]
        assert not target.queue_exists(old, vhost)
        assert not target.exchange_exists(old_x, vhost)
        assert target.queue_exists(named, vhost)  # the client's queues are left alone
        after = diff()
        assert (after.returncode, after.stdout) == (0, "no differences: 3 present, nothing extra\n")
    finally:
        holder.close()


def test_prune_asks_on_a_terminal(warren, target: Target, tmp_path: Path) -> None:
    vhost = target.new_vhost()
    conf = tmp_path / "a.conf"
    conf.write_text(f"queue {target.name('keep')} durable\n")
    old = target.name("old")
    target.declare(vhost, queues=(target.name("keep"), old))
    args = ["config", "apply", str(conf), "--url", target.url(vhost), *target.api, "--prune"]
    code, shown = run_on_a_terminal(args, [b"n"], prompt=b"[y/N] ")
    assert code == 1, shown
    assert shown.splitlines() == [
        "After applying the file, --prune deletes what the broker has and the file does not:",
        f"  queue {old}",
        "Delete it? [y/N] n",
        "warren config apply: not confirmed; nothing was changed",
    ]
    assert target.queue_exists(old, vhost)
    code, shown = run_on_a_terminal(args, [b"y"], prompt=b"[y/N] ")
    assert code == 0, shown
    # Without the progress line a terminal shows on stderr.
    shown = re.sub(r"\x1b\[K(applying: \d+/\d+ \(\d+%\))?", "", shown)
    assert shown.splitlines()[2:] == [
        "Delete it? [y/N] y",
        f"present      queue {target.name('keep')}",
        f"deleted      queue {old}",
        "1 present, 1 deleted",
    ]
    assert not target.queue_exists(old, vhost)


def test_diff_and_prune_access(warren, target: Target, tmp_path: Path) -> None:
    """Users, vhosts, permissions and limits: compared as apply compares them; the
    broker's extra ones found only for the kinds the file declares."""
    vhost = target.new_vhost()
    spare = target.new_vhost("spare")  # on the broker, not in the file
    alice, bob = target.name("alice"), target.name("bob")
    for user in (alice, bob):
        target.forget_user(user)
        target.http("PUT", f"/api/users/{q(user)}", {"password": "pw", "tags": "management"})
    alice_hash = target.http("GET", f"/api/users/{q(alice)}")["password_hash"]
    target.http("PUT", f"/api/permissions/{q(vhost)}/{q(bob)}",
                {"configure": "", "write": "", "read": ".*"})
    target.http("PUT", f"/api/vhost-limits/{q(vhost)}/max-connections", {"value": 50})
    target.declare(vhost, queues=(target.name("not-the-files"),))  # no topology in the file
    conf = tmp_path / "access.conf"
    conf.write_text(
        f"vhost {vhost}\n"
        f'    description "acli"\n'
        f"user {alice}\n"
        f'    password-hash "{alice_hash}"\n'
        "    tags monitoring\n"
        f'permission {alice} on {vhost} configure ".*" write ".*" read ".*"\n'
        f"limit {vhost} max-queues 10\n"
    )
    diff = warren("config", "diff", str(conf), "--vhost", vhost, *target.api)
    assert diff.returncode == 1, diff.stderr
    mine = [line for line in lines(diff.stdout) if target.prefix in line]
    assert mine == [
        f"would-change vhost {vhost}: description was '', now 'acli'",
        f"would-change user {alice}: tags were 'management', now 'monitoring'",
        f"would-create permission {alice} on {vhost}",
        f"would-create limit {vhost} max-queues 10",
        f"extra        permission {bob} on {vhost}",
        f"extra        limit {vhost} max-connections 50",
        f"extra        user {bob}",
        f"extra        vhost {spare}",
    ]
    # guest (and the API's own user) and their permissions are never extra; nor is /;
    # nor the queue: the file declares no exchange, queue or binding.
    assert not any(" guest" in line or "vhost /" in line or line.startswith("extra        queue")
                   for line in lines(diff.stdout))

    apply = ["config", "apply", str(conf), "--url", target.url(vhost), *target.api, "--prune"]
    if target.kind == "rabbitmq":
        # The shared reference has other people's users and vhosts: a dry run only.
        dry = warren(*apply, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert f"would-delete user {bob}" in lines(dry.stdout)
        assert target.exists(f"/api/users/{q(bob)}")
        return
    pruned = warren(*apply, "--yes")
    assert pruned.returncode == 0, pruned.stderr
    assert lines(pruned.stdout) == [
        f"changed      vhost {vhost}: description was '', now 'acli'",
        f"changed      user {alice}: tags were 'management', now 'monitoring'",
        f"created      permission {alice} on {vhost}",
        f"created      limit {vhost} max-queues 10",
        f"deleted      permission {bob} on {vhost}",
        f"deleted      limit {vhost} max-connections 50",
        f"deleted      user {bob}",
        f"deleted      vhost {spare}",
        "2 created, 2 changed, 4 deleted",
    ]
    assert not target.exists(f"/api/users/{q(bob)}")
    assert not target.exists(f"/api/vhosts/{q(spare)}")
    assert target.http("GET", f"/api/vhost-limits/{q(vhost)}")[0]["value"] == {"max-queues": 10}
    again = warren("config", "diff", str(conf), "--vhost", vhost, *target.api)
    assert (again.returncode, again.stdout) == (0, "no differences: 4 present, nothing extra\n")


def test_diff_errors_are_one_line(warren, target: Target, tmp_path: Path) -> None:
    broken = tmp_path / "broken.conf"
    broken.write_text("exchange x type topik\n")
    result = warren("config", "diff", str(broken), *target.api)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"warren config diff: {broken}:1:17: unknown exchange type 'topik': did you mean "
        f"'topic'?; run `warren config check {broken}` for details\n"
    )
    ok = tmp_path / "ok.conf"
    ok.write_text("queue acli-never-declared\n")
    refused = warren("config", "apply", str(ok), "--url", target.url(), "--prune")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == (
        "warren config apply: --prune needs the management API to see what the broker has: "
        "pass --management-url http://HOST:15672 (or set $WARREN_MANAGEMENT_URL, or a "
        "profile); nothing was applied\n"
    )
    assert not target.queue_exists("acli-never-declared")
    yes_alone = warren("config", "apply", str(ok), "--url", target.url(), "--yes")
    assert (yes_alone.returncode, yes_alone.stderr) == (2, (
        "warren config apply: --yes confirms --prune's deletions; without --prune it means "
        "nothing\n"
    ))

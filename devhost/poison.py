"""`python -m devhost.poison`: look at, replay and purge the app's poison queues, locally or in Azure.

    python -m devhost.poison depth                      # every app queue's poison depth
    python -m devhost.poison replay booking-events      # move its poison messages back onto the queue
    python -m devhost.poison replay reminders --limit 100
    python -m devhost.poison purge booking-events --older-than-days 7

It uses the app's own clients and settings: with nothing set it reads local.settings.json (or the
example) and talks to Azurite; in Azure, set `AzureWebJobsStorage__queueServiceUri` to the storage
account's queue endpoint and sign in (`az login`): DefaultAzureCredential needs the Storage Queue
Data Contributor role on the account. It prints counts only, never a message's content (a booking
event holds a mobile number). Replay once the cause of the failures is fixed: a message that fails
again goes back to the poison queue after maxDequeueCount tries.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys

from shared import resources


def _use_local_settings_unless_pointed_elsewhere() -> None:
    if not any(os.environ.get(name) for name in ("AzureWebJobsStorage", "AzureWebJobsStorage__queueServiceUri")):
        from devhost.__main__ import load_local_settings

        load_local_settings()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devhost.poison", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    depth = commands.add_parser("depth", help="messages on each poison queue")
    depth.add_argument("queues", nargs="*", metavar="queue",
                       help=f"any of {', '.join(resources.QUEUES)} (default: all)")
    replay = commands.add_parser("replay", help="move a poison queue's messages back onto its queue")
    replay.add_argument("queue", choices=resources.QUEUES)
    replay.add_argument("--limit", type=int, default=None, help="at most this many (default: all)")
    purge = commands.add_parser("purge", help="delete poison messages older than the retention period")
    purge.add_argument("queue", choices=resources.QUEUES)
    purge.add_argument("--older-than-days", type=float, default=7.0)
    return parser


async def run(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "depth" and set(args.queues) - set(resources.QUEUES):
        parser.error(f"queues are {', '.join(resources.QUEUES)}")
    _use_local_settings_unless_pointed_elsewhere()
    from shared.adapters.clients import Clients
    from shared.adapters.queue_poison import PoisonQueues
    from shared.settings import Settings

    clients = Clients(Settings())
    try:
        poison = PoisonQueues(clients.queues())
        if args.command == "depth":
            for queue in args.queues or resources.QUEUES:
                print(f"{queue}-poison\t{await poison.depth(queue)}")
        elif args.command == "replay":
            outcome = await poison.replay(args.queue, args.limit)
            print(f"replayed {outcome.replayed} message(s) onto {args.queue}; "
                  f"{outcome.left} left on {args.queue}-poison")
        else:
            purged = await poison.purge(args.queue, dt.timedelta(days=args.older_than_days), dt.datetime.now(dt.UTC))
            print(f"purged {purged} message(s) from {args.queue}-poison")
    finally:
        await clients.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())

"""Delivery from a CLI process: console accounts have no running service to send for them.

The moderation service queues an approved reply in the outbox and calls its `wake` hook. In
`autoreply queue ...` that hook is `console_wake`: a console account's reply is delivered at
once (recorded as sent, since nobody sits at that console any more); any other platform's
reply waits for the running service, whose outbox sweep picks it up within seconds.
"""

from __future__ import annotations

import asyncio

from bot.moderation import Wake
from bot.storage import accounts as account_store
from bot.storage.db import Database


def console_wake(db: Database) -> Wake:
    def wake(conversation_id: int) -> bool:
        from bot.channels.console import ConsoleChannel
        from bot.outbox import Outbox

        with db.session() as s:
            account = account_store.of_conversation(s, conversation_id)
        if account.platform != ConsoleChannel.platform:
            return False

        async def deliver() -> None:
            outbox = Outbox(db, {account.name: ConsoleChannel(account=account.name)})
            outbox.notify(conversation_id)
            await outbox.idle()

        asyncio.run(deliver())
        return True

    return wake

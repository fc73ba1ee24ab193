"""Notifications: subscriptions to run and step events, delivered through a durable outbox.

:mod:`mloop.notify.rules` names the events and decides who wants one (no I/O),
:mod:`mloop.notify.channels` sends one (webhook, Slack, e-mail), and
:mod:`mloop.notify.notifier` turns committed events into outbox rows and delivers them.
Nothing is imported here, so ``mloop.config`` can use the rules without the rest.

Layer: domain operations (beside :mod:`mloop.services`): above the stores and the context,
below the run service, which calls :func:`mloop.notify.notifier.pump_quietly` when a run ends
and when the reconciler finishes a run whose engine died. :mod:`mloop.notify.rules` is pure
(standard library only), so the settings validate ``[[notify]]`` tables with it.
"""

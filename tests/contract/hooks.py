"""schemathesis hooks for the contract check (tests/contract/run.sh).

The run turns the lockout of wrong API tokens off, so that its generated
wrong tokens are answered 401. A generated PATCH of the transport settings
could turn it back on (authFailureLockoutThreshold, authFailureLockoutWindow)
and then lock the run's own address out for up to a day, after which every
answer is a 429 that proves nothing; so could a configuration document (PUT
/api/v1/config), whose transport settings left out take their defaults:
a document states the lockout off, as the run set it. Those fields are taken
out of a patch before it is sent; the API tests check them (api::transport_settings,
api::auth_and_docs).
"""

import schemathesis

LOCKOUT = ("authFailureLockoutThreshold", "authFailureLockoutWindow")


def strip_lockout(settings):
    if isinstance(settings, dict):
        for field in LOCKOUT:
            settings.pop(field, None)


def keep_lockout_off(settings):
    # A document's field left out takes its default (the lockout on), so
    # the document states it off, as the run set it.
    if isinstance(settings, dict):
        strip_lockout(settings)
        settings["authFailureLockoutThreshold"] = 0


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    op = case.operation
    if op.method.upper() == "PATCH" and op.path == "/api/v1/transport-settings":
        strip_lockout(case.body)
    # A configuration document states the transport settings too, on its
    # own and per server.
    if op.method.upper() == "PUT" and op.path == "/api/v1/config" and isinstance(case.body, dict):
        keep_lockout_off(case.body.get("transportSettings"))
        servers = case.body.get("servers")
        if isinstance(servers, dict):
            for entry in servers.values():
                if isinstance(entry, dict):
                    keep_lockout_off(entry.get("transportSettings"))

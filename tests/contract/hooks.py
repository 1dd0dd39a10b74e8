"""schemathesis hooks for the contract check (tests/contract/run.sh).

The run turns the lockout of wrong API tokens off, so that its generated
wrong tokens are answered 401. A generated PATCH of the transport settings
could turn it back on (authFailureLockoutThreshold, authFailureLockoutWindow)
and then lock the run's own address out for up to a day, after which every
answer is a 429 that proves nothing. Those two fields are taken out of such
a patch before it is sent; the API tests check them (api::transport_settings,
api::auth_and_docs).
"""

import schemathesis

LOCKOUT = ("authFailureLockoutThreshold", "authFailureLockoutWindow")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    op = case.operation
    if op.method.upper() == "PATCH" and op.path == "/api/v1/transport-settings" and isinstance(case.body, dict):
        for field in LOCKOUT:
            case.body.pop(field, None)

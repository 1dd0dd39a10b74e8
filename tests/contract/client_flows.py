"""The README's main flows, driven through a client generated from the
OpenAPI document Ferry serves (openapi-python-client, from PyPI): proof
that the document is usable by code nobody here wrote, not just valid.

Usage: client_flows.py BASE_URL TOKEN SUBMISSION_HOST:PORT CLIENT_IP OUT_DIR
Against a Hub with no configuration of its own yet. Each step checks what
it got back and exits non-zero with the step's name when it is wrong.
"""

import importlib
import secrets
import smtplib
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

base, token, submission, client_ip, out = sys.argv[1:6]
out = Path(out)

# Generate the client from the served document, as a user would.
doc = httpx.get(f"{base}/api/v1/openapi.json").raise_for_status().text
(out / "ferry.json").write_text(doc)
(out / "config.yml").write_text("post_hooks: []\n")
generator = Path(sys.executable).with_name("openapi-python-client")
subprocess.run(
    [str(generator), "generate", "--path", str(out / "ferry.json"), "--meta", "none",
     "--output-path", str(out / "ferry_client"), "--config", str(out / "config.yml")],
    check=True, capture_output=True, text=True,
)
sys.path.insert(0, str(out))

fc = importlib.import_module("ferry_client")
api = lambda tag, op: importlib.import_module(f"ferry_client.api.{tag}.{op}")  # noqa: E731
models = importlib.import_module("ferry_client.models")
client = fc.AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)

steps = []


def step(name, ok, detail=""):
    steps.append(name)
    if not ok:
        sys.exit(f"step '{name}' failed: {detail}")


# The server answers with its role.
info = api("server", "get_server").sync(client=client)
step("server info", info.role.value == "Hub", info)

# An accepted domain whose mailboxes are on this Hub.
domain = api("accepted_domains", "create_accepted_domain").sync(
    client=client,
    body=models.AcceptedDomainCreate.from_dict(
        {"domainName": "contoso.test", "mailboxDelivery": {"type": "Maildir"}}),
)
step("accepted domain created", domain.domain_name == "contoso.test" and domain.default, domain)

# A refusal is a problem naming the field, parsed as the document says.
bad = api("accepted_domains", "create_accepted_domain").sync_detailed(
    client=client, body=models.AcceptedDomainCreate(domain_name="contoso..test"))
step("422 problem", bad.status_code == 422 and isinstance(bad.parsed, models.Problem)
     and any(e.field == "domainName" for e in bad.parsed.errors), bad.content)

# A receive connector for the Hubs, read back by name, changed with
# If-Match from its ETag; a stale one is refused with 412.
made = api("receive_connectors", "create_receive_connector").sync(
    client=client,
    body=models.ReceiveConnectorCreate.from_dict({
        "name": "From Hub", "usage": "Internal", "bindings": [f"{client_ip.rsplit('.', 1)[0]}.3:2525"],
        "remoteIpRanges": ["127.0.0.11", "127.0.0.12"],
        "authMechanism": ["Tls", "BasicAuth", "BasicAuthRequireTLS"],
        "permissionGroups": ["ExchangeServers"]}),
)
step("receive connector created", made.name == "From Hub", made)
got = api("receive_connectors", "get_receive_connector").sync_detailed(id="From Hub", client=client)
etag = got.headers["etag"]
step("receive connector read with its ETag", got.parsed.id == made.id and etag == f'"{made.version}"', etag)
patched = api("receive_connectors", "update_receive_connector").sync(
    id="From Hub", client=client, if_match=etag,
    body=models.ReceiveConnectorPatch.from_dict({"maxRecipientsPerMessage": 500}))
step("receive connector patched", patched.max_recipients_per_message == 500, patched)
stale = api("receive_connectors", "update_receive_connector").sync_detailed(
    id="From Hub", client=client, if_match=etag,
    body=models.ReceiveConnectorPatch.from_dict({"maxRecipientsPerMessage": 400}))
step("stale If-Match refused", stale.status_code == 412 and isinstance(stale.parsed, models.Problem),
     stale.content)
listed = api("receive_connectors", "list_receive_connectors").sync(client=client)
step("receive connectors listed", "From Hub" in [c.name for c in listed.items], listed)

# Ann's login: she sends as her address and an alias, with a password made here.
password = secrets.token_urlsafe(24)
login = api("credentials", "create_credential").sync(
    client=client,
    body=models.CredentialCreate.from_dict({
        "kind": "Login", "userName": "ann", "principal": "User", "password": password,
        "primaryAddress": "ann@contoso.test", "aliases": ["sales@contoso.test"]}),
)
step("login created", login.send_as == ["ann@contoso.test", "sales@contoso.test"], login)

# She submits with STARTTLS and AUTH as sales@; as ceo@ she is refused.
host, port = submission.rsplit(":", 1)
tls = ssl.create_default_context()
tls.check_hostname = False
tls.verify_mode = ssl.CERT_NONE
with smtplib.SMTP(host, int(port), source_address=(client_ip, 0), timeout=30) as s:
    s.starttls(context=tls)
    s.login("ann", password)
    s.sendmail("sales@contoso.test", ["bob@contoso.test"],
               b"From: sales@contoso.test\r\nTo: bob@contoso.test\r\nSubject: sent as sales\r\n\r\nhello\r\n")
    try:
        s.sendmail("ceo@contoso.test", ["bob@contoso.test"], b"Subject: not hers\r\n\r\nx\r\n")
        step("sending as another refused", False, "accepted")
    except smtplib.SMTPSenderRefused as e:
        step("sending as another refused", e.smtp_code == 550, e)

# Message tracking finds the delivery to Bob's mailbox.
deadline = time.time() + 20
events = []
while time.time() < deadline:
    page = api("tracking", "get_tracking").sync(client=client, recipient="bob@contoso.test")
    events = [e.event for e in page.items]
    if "DELIVER" in events:
        break
    time.sleep(0.2)
step("tracking shows the delivery", "DELIVER" in events, events)

# Queues and transport settings.
queues = api("queues", "list_queues").sync(client=client)
step("queues listed", isinstance(queues.items, list), queues)
ts = api("transport_settings", "get_transport_settings").sync_detailed(client=client)
changed = api("transport_settings", "update_transport_settings").sync(
    client=client, if_match=ts.headers["etag"],
    body=models.TransportSettingsPatch.from_dict({"messageRetryInterval": "00:00:30"}))
step("transport settings patched", changed.message_retry_interval == "00:00:30", changed)

# The connector removed.
gone = api("receive_connectors", "delete_receive_connector").sync_detailed(id="From Hub", client=client)
step("receive connector deleted", gone.status_code == 204, gone.content)
missing = api("receive_connectors", "get_receive_connector").sync_detailed(id="From Hub", client=client)
step("deleted connector is 404", missing.status_code == 404, missing.content)

print(f"OK: {len(steps)} steps: " + "; ".join(steps))

//! Message authentication against independent implementations: Ferry's
//! DKIM signatures verified by dkimpy (PyPI) with the keys served by
//! dnsmasq on loopback, keys generated and imported (OpenSSL) through the
//! API, their DNS records checked.

mod arc;
mod dkim;
mod reports;
mod spf;
mod verify;

/// Runs openssl; its standard output.
fn openssl(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// dnsmasq's form of a TXT record: strings of at most 250 characters,
/// quoted (dnsmasq splits unquoted text at commas: `rua=a,b`).
fn txt(name: &str, record: &str) -> String {
    let chunks: Vec<String> = record
        .as_bytes()
        .chunks(250)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!("--txt-record={name},{}", chunks.join(","))
}

/// dkimpy's verdict on a message, its keys looked up at `server`.
const DKIM_VERIFY: &str = r#"
import sys, dkim, dns.resolver
host, port = sys.argv[1].rsplit(':', 1)
r = dns.resolver.Resolver(configure=False)
r.nameservers = [host]
r.port = int(port)
def dnsfunc(name, timeout=5):
    try:
        a = r.resolve(name.decode().rstrip('.'), 'TXT')
    except Exception:
        return None
    return b''.join(b''.join(x.strings) for x in a)
msg = sys.stdin.buffer.read()
ok = dkim.verify(msg, dnsfunc=dnsfunc)
sig = [l for l in msg.split(b'\r\n') if l.lower().startswith(b'dkim-signature')]
print('PASS' if ok else 'FAIL', sig)
sys.exit(0 if ok else 1)
"#;

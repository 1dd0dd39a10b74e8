//! Message authentication against independent implementations: Ferry's
//! DKIM signatures verified by dkimpy (PyPI) with the keys served by
//! dnsmasq on loopback, keys generated and imported (OpenSSL) through the
//! API, their DNS records checked.

mod arc;
mod dkim;
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

/// dnsmasq's form of a TXT record: strings of at most 250 characters.
fn txt(name: &str, record: &str) -> String {
    let chunks: Vec<String> = record
        .as_bytes()
        .chunks(250)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    format!("--txt-record={name},{}", chunks.join(","))
}

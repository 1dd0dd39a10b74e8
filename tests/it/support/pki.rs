//! A test CA made with OpenSSL, issuing server certificates for given names.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Ca {
    dir: PathBuf,
    pub cert_pem: String,
}

fn run(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Ca {
    pub fn new(dir: &Path) -> Ca {
        let dir = dir.join("ca");
        std::fs::create_dir_all(&dir).unwrap();
        run(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=Ferry Test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
            &dir,
        );
        let cert_pem = std::fs::read_to_string(dir.join("ca.crt")).unwrap();
        Ca { dir, cert_pem }
    }

    /// (certificate PEM, key PEM) for `names`, signed by this CA.
    pub fn issue(&self, names: &[&str]) -> (String, String) {
        let base = names[0].replace('*', "wild");
        let sans = names
            .iter()
            .map(|n| {
                if n.parse::<std::net::IpAddr>().is_ok() {
                    format!("IP:{n}")
                } else {
                    format!("DNS:{n}")
                }
            })
            .collect::<Vec<_>>()
            .join(",");
        std::fs::write(
            self.dir.join(format!("{base}.ext")),
            format!("subjectAltName={sans}\nextendedKeyUsage=serverAuth,clientAuth\n"),
        )
        .unwrap();
        run(
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={}", names[0]),
                "-keyout",
                &format!("{base}.key"),
                "-out",
                &format!("{base}.csr"),
            ],
            &self.dir,
        );
        run(
            &[
                "x509",
                "-req",
                "-in",
                &format!("{base}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "30",
                "-extfile",
                &format!("{base}.ext"),
                "-out",
                &format!("{base}.crt"),
            ],
            &self.dir,
        );
        (
            std::fs::read_to_string(self.dir.join(format!("{base}.crt"))).unwrap(),
            std::fs::read_to_string(self.dir.join(format!("{base}.key"))).unwrap(),
        )
    }
}

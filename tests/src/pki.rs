//! Certificates made on the spot for TLS tests (`rcgen`): a CA and leaf certificates it
//! signs for `127.0.0.1` and `localhost`, written as PEM files in a temp directory.

use std::path::{Path, PathBuf};

/// A CA able to sign leaf certificates.
pub struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
    dir: PathBuf,
}

/// A leaf certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct Leaf {
    /// The certificate file.
    pub cert: PathBuf,
    /// The private key file.
    pub key: PathBuf,
}

impl Ca {
    /// A new CA named `name`, its files under a fresh temp directory.
    pub fn new(name: &str) -> Ca {
        let dir = std::env::temp_dir().join(format!(
            "rpc-it-{}",
            crate::registry::unique(&format!("pki-{name}"))
        ));
        std::fs::create_dir_all(&dir).expect("pki dir");
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        let cert = params.self_signed(&key).expect("CA certificate");
        std::fs::write(dir.join("ca.pem"), cert.pem()).expect("write CA");
        Ca { cert, key, dir }
    }

    /// The CA certificate's PEM file.
    pub fn pem(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A leaf certificate for `127.0.0.1` and `localhost`, written as `{name}.pem` and
    /// `{name}.key`.
    pub fn leaf(&self, name: &str) -> Leaf {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("params");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("signed");
        let leaf = Leaf {
            cert: self.dir.join(format!("{name}.pem")),
            key: self.dir.join(format!("{name}.key")),
        };
        write(&leaf.cert, &cert.pem());
        write(&leaf.key, &key.serialize_pem());
        leaf
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write PEM");
}

impl Drop for Ca {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! The compiled-in trust store (`TLS_ROOTS=amazon`): the bundle parses into five roots that
//! rustls accepts as trust anchors, they are the ones Amazon Trust Services publishes, they
//! match the platform's copies where the platform has them, and a client built on it
//! refuses a server whose certificate chains to any other root.

use std::collections::BTreeSet;
use std::sync::Arc;

use fleet_lambdas::aws::{AMAZON_TRUST_SERVICES, TrustRoots};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

fn bundle() -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(AMAZON_TRUST_SERVICES.as_bytes())
        .collect::<Result<_, _>>()
        .expect("the bundle is PEM")
}

#[test]
fn the_bundle_is_amazon_trust_services_five_roots() {
    let certs = bundle();
    assert_eq!(certs.len(), 5);
    let mut store = rustls::RootCertStore::empty();
    let (valid, invalid) = store.add_parsable_certificates(certs);
    assert_eq!((valid, invalid), (5, 0));
    let text = AMAZON_TRUST_SERVICES;
    for name in [
        "Amazon Root CA 1",
        "Amazon Root CA 2",
        "Amazon Root CA 3",
        "Amazon Root CA 4",
        "Starfield Services Root Certificate Authority - G2",
    ] {
        assert!(text.contains(&format!("CN = {name}\n")), "{name} missing");
    }
}

/// Drift check: where the platform ships these roots (Debian's ca-certificates names the
/// files after the subject), they are byte for byte the bundle's.
#[test]
fn the_bundle_matches_the_platforms_copies() {
    let ours: BTreeSet<Vec<u8>> = bundle().iter().map(|c| c.to_vec()).collect();
    let mut compared = 0;
    for file in [
        "Amazon_Root_CA_1.pem",
        "Amazon_Root_CA_2.pem",
        "Amazon_Root_CA_3.pem",
        "Amazon_Root_CA_4.pem",
        "Starfield_Services_Root_Certificate_Authority_-_G2.pem",
    ] {
        let Ok(pem) = std::fs::read(format!("/etc/ssl/certs/{file}")) else {
            continue;
        };
        let der = CertificateDer::from_pem_slice(&pem).expect("platform PEM");
        assert!(
            ours.contains(der.as_ref()),
            "{file} differs from the bundle"
        );
        compared += 1;
    }
    eprintln!("compared {compared} platform certificate(s)");
}

/// A TLS server on 127.0.0.1 with a self-signed certificate: the SDK's client built with
/// [`TrustRoots::Amazon`] attempts the handshake and refuses the certificate.
#[tokio::test]
async fn a_server_outside_the_bundle_is_refused() {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor
            .accept(tcp)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let sdk = fleet_lambdas::aws::loader(TrustRoots::Amazon)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_credential_types::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .endpoint_url(format!("https://localhost:{port}"))
        // One attempt: a retry would meet a closed listener and hide the TLS error.
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let client = fleet_lambdas::aws::dynamodb_client(&sdk, None);
    let err = client.list_tables().send().await.unwrap_err();
    let chain = format!("{:?}", err);
    assert!(
        chain.contains("UnknownIssuer") || chain.contains("invalid peer certificate"),
        "{chain}"
    );
    // The server saw the client give up on the certificate.
    let server_side = server.await.unwrap().unwrap_err();
    assert!(!server_side.is_empty());
}

//! TLS and mutual TLS with rustls, certificates generated in the test.

use credit_risk::{
    proto::{self as pb, registry_service_client::RegistryServiceClient},
    server,
    server::config::{ServerConfig, TlsConfig},
    store::{Store, StoreOptions},
};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca_pem: ca_cert.pem(),
        server: leaf("localhost"),
        client: leaf("scheduler.pudong"),
    }
}

async fn start(
    dir: &std::path::Path,
    tls: TlsConfig,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let store = Store::open(&dir.join("data"), StoreOptions::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = ServerConfig {
        listen: addr.to_string(),
        data_dir: dir.join("data"),
        tls: Some(tls),
        ..ServerConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server::run(&cfg, store, listener, async move {
            let _ = stopped.await;
        })
        .await
        .expect("server ran");
    });
    (addr, stop, task)
}

async fn call(ch: Result<Channel, tonic::transport::Error>) -> Result<(), String> {
    let ch = ch.map_err(|e| format!("{e:?}"))?;
    RegistryServiceClient::new(ch)
        .get_enterprise(pb::GetEnterpriseRequest {
            uscc: "91310000631696382C".into(),
        })
        .await
        .map(|_| ())
        .or_else(|s| {
            if s.code() == tonic::Code::NotFound {
                Ok(())
            } else {
                Err(format!("{s:?}"))
            }
        })
}

#[tokio::test]
async fn tls_and_mutual_tls() {
    let p = pki();
    let tmp = tempfile::tempdir().unwrap();
    let w = |name: &str, s: &str| {
        let path = tmp.path().join(name);
        std::fs::write(&path, s).unwrap();
        path
    };
    let (cert, key) = (w("server.pem", &p.server.0), w("server.key", &p.server.1));
    let ca = w("ca.pem", &p.ca_pem);

    // Server certificate only.
    let (addr, stop, task) = start(
        &tmp.path().join("a"),
        TlsConfig {
            cert_file: cert.clone(),
            key_file: key.clone(),
            client_ca_file: None,
        },
    )
    .await;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&p.ca_pem))
        .domain_name("localhost");
    let https = Endpoint::from_shared(format!("https://{addr}")).unwrap();
    call(
        https
            .clone()
            .tls_config(tls.clone())
            .unwrap()
            .connect()
            .await,
    )
    .await
    .expect("TLS call");
    let plain = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await;
    assert!(call(plain).await.is_err(), "plaintext is refused");
    let _ = stop.send(());
    task.await.unwrap();

    // Client certificates required.
    let (addr, stop, task) = start(
        &tmp.path().join("b"),
        TlsConfig {
            cert_file: cert,
            key_file: key,
            client_ca_file: Some(ca),
        },
    )
    .await;
    let https = Endpoint::from_shared(format!("https://{addr}")).unwrap();
    assert!(
        call(
            https
                .clone()
                .tls_config(tls.clone())
                .unwrap()
                .connect()
                .await
        )
        .await
        .is_err(),
        "no client certificate"
    );
    let with_id = tls.identity(Identity::from_pem(&p.client.0, &p.client.1));
    call(https.tls_config(with_id).unwrap().connect().await)
        .await
        .expect("mTLS call");
    let _ = stop.send(());
    task.await.unwrap();
}

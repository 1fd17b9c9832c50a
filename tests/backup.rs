//! Online backup through the running server, offline restore, tree checksums compared.

mod common;

use common::*;
use credit_risk::{
    proto::{self as pb, admin_service_client::AdminServiceClient},
    store::{backup, Store, StoreOptions},
};

#[tokio::test]
async fn backup_restore_round_trip() {
    let s = TestServer::start().await;
    credit_risk::demo::load(&s.store, 300).await.unwrap();
    let mut c = s.client.clone();
    put_enterprise(&mut c, enterprise(&uscc_n(b'1', 1))).await;
    let mut a = AdminServiceClient::connect(format!("http://{}", s.addr))
        .await
        .unwrap();
    let err = a
        .backup(pb::BackupRequest {
            name: "../escape".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.message().contains("name"));
    let r = a
        .backup(pb::BackupRequest {
            name: "b1.crbk".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.entries > 300);
    let again = a
        .backup(pb::BackupRequest {
            name: "b1.crbk".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(
        again.message().contains("b1.crbk"),
        "an existing file is not overwritten"
    );
    let dir = s.dir.clone();
    let tmp = s.stop().await;

    let source = Store::open(&dir, StoreOptions::default()).unwrap();
    let want = source.checksums().unwrap();
    source.close(std::time::Duration::from_secs(5)).unwrap();
    let target = tempfile::tempdir().unwrap();
    let restored_dir = target.path().join("restored");
    let n = backup::restore(std::path::Path::new(&r.path), &restored_dir).unwrap();
    assert_eq!(n, r.entries);
    let restored = Store::open(&restored_dir, StoreOptions::default()).unwrap();
    assert_eq!(restored.checksums().unwrap(), want);
    assert!(restored.check_indexes().unwrap() > 300);
    assert!(restored.verify_audit_chain().unwrap().1.is_none());
    restored.close(std::time::Duration::from_secs(5)).unwrap();
    // Restoring over a store is refused; a damaged file is refused.
    assert!(backup::restore(std::path::Path::new(&r.path), &restored_dir).is_err());
    let mut bytes = std::fs::read(&r.path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let damaged = target.path().join("damaged.crbk");
    std::fs::write(&damaged, bytes).unwrap();
    let e = backup::restore(&damaged, &target.path().join("d2")).unwrap_err();
    assert!(
        e.to_string().contains("checksum") || e.to_string().contains("corrupt"),
        "{e}"
    );
    assert!(
        !target.path().join("d2").exists(),
        "nothing half-restored is left"
    );
    drop(tmp);
}

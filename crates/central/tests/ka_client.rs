//! The KA Partner API v3 client against the fake KA on loopback.

mod support;
use plesk_reseller_central::ka::*;
use std::time::Duration;
use support::fake_ka::{self, FakeKa};

fn client(ka: &FakeKa, form: ParentForm, timeout: Duration) -> KaClient {
    KaClient::new(KaSettings {
        base_url: ka.base_url(),
        username: fake_ka::USER.into(),
        password: fake_ka::PASSWORD.into(),
        owner_id: Some(fake_ka::OWNER.into()),
        parent_form: form,
        timeout,
    })
    .unwrap()
}

#[tokio::test]
async fn creates_a_main_key_and_reads_its_code() {
    let ka = FakeKa::start(&["PLESK-12-WEB-HOST-1M"]).await;
    let c = client(&ka, ParentForm::KeyId, Duration::from_secs(5));
    let key = c
        .create_key(&NewKey {
            items: vec!["PLESK-12-WEB-HOST-1M".into()],
            parent_key_number: None,
            nickname: "ord-1".into(),
        })
        .await
        .unwrap();
    assert_eq!(ka.keys().len(), 1);
    assert_eq!(key.activation_code, ka.keys()[0].activation_code);
    assert_eq!(key.nickname.as_deref(), Some("ord-1"));
    let again = c.get_key(&key.key_id.to_string()).await.unwrap();
    assert_eq!(again.key_number, key.key_number);
    let found = c.find_by_nickname("ord-1").await.unwrap();
    assert_eq!(
        found,
        vec![ShortKey {
            key_id: key.key_id,
            parent_key_id: None
        }]
    );
    assert!(c.find_by_nickname("ord-2").await.unwrap().is_empty());
    let call = &ka.calls()[0];
    assert_eq!(call.method, "POST");
    let body: serde_json::Value = serde_json::from_str(&call.body).unwrap();
    assert_eq!(body["ownerId"], fake_ka::OWNER);
    assert_eq!(body["items"][0]["item"], "PLESK-12-WEB-HOST-1M");
}

#[tokio::test]
async fn attaches_an_extension_key_by_key_id_or_key_number() {
    let ka = FakeKa::start(&["ADD-EXT-1M"]).await;
    ka.add_key("PLSK.12345678.0001");
    for form in [ParentForm::KeyId, ParentForm::KeyNumber] {
        let c = client(&ka, form, Duration::from_secs(5));
        let key = c
            .create_key(&NewKey {
                items: vec!["ADD-EXT-1M".into()],
                parent_key_number: Some("PLSK.12345678.0001".into()),
                nickname: format!("{form:?}"),
            })
            .await
            .unwrap();
        assert_eq!(key.parent_key_id, Some(12345678));
    }
    let bodies: Vec<serde_json::Value> = ka
        .calls()
        .iter()
        .map(|c| serde_json::from_str(&c.body).unwrap())
        .collect();
    assert_eq!(
        bodies[0]["parentKeyIdentifiers"],
        serde_json::json!({"keyId": 12345678})
    );
    assert_eq!(
        bodies[1]["parentKeyIdentifiers"],
        serde_json::json!({"keyNumber": "PLSK.12345678.0001"})
    );
}

#[tokio::test]
async fn ka_errors_are_kept_verbatim_and_classified() {
    let ka = FakeKa::start(&["ADD-EXT-1M"]).await;
    let c = client(&ka, ParentForm::KeyId, Duration::from_secs(5));
    let e = c
        .create_key(&NewKey {
            items: vec!["NOT-SOLD".into()],
            parent_key_number: None,
            nickname: "x".into(),
        })
        .await
        .unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert!(e.verbatim().contains("\"type\":\"233\""), "{}", e.verbatim());
    assert!(e.to_string().contains("Unknown item (type 233) item = NOT-SOLD"), "{e}");
    ka.fail_next(&[503]);
    let e = c.get_key("1").await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    let mut bad = client(&ka, ParentForm::KeyId, Duration::from_secs(5));
    bad = KaClient::new(KaSettings {
        password: "wrong".into(),
        ..settings_of(&ka)
    })
    .unwrap_or(bad);
    let e = bad.get_key("1").await.unwrap_err();
    assert!(matches!(e, KaError::Api { status: 401, .. }), "{e}");
    assert!(!e.to_string().contains(fake_ka::PASSWORD));
}

fn settings_of(ka: &FakeKa) -> KaSettings {
    KaSettings {
        base_url: ka.base_url(),
        username: fake_ka::USER.into(),
        password: fake_ka::PASSWORD.into(),
        owner_id: Some(fake_ka::OWNER.into()),
        parent_form: ParentForm::KeyId,
        timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn a_lost_answer_is_a_transient_error_and_the_key_is_found_by_nickname() {
    let ka = FakeKa::start(&["PLESK-12-WEB-HOST-1M"]).await;
    ka.answer_creates_after(Some(Duration::from_secs(3)));
    let c = client(&ka, ParentForm::KeyId, Duration::from_millis(300));
    let e = c
        .create_key(&NewKey {
            items: vec!["PLESK-12-WEB-HOST-1M".into()],
            parent_key_number: None,
            nickname: "ord-9".into(),
        })
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert_eq!(ka.keys().len(), 1, "KA committed the key although the answer was lost");
    let found = c.find_by_nickname("ord-9").await.unwrap();
    assert_eq!(found.len(), 1);
    let key = c.get_key(&found[0].key_id.to_string()).await.unwrap();
    assert_eq!(key.activation_code, ka.keys()[0].activation_code);
}

#[test]
fn the_password_file_must_be_root_only_and_is_named_when_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("ka.password");
    std::fs::write(&p, "s3cret\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = read_password(&p).unwrap_err().to_string();
    assert!(e.contains(&p.display().to_string()) && e.contains("chmod 600"), "{e}");
    assert!(!e.contains("s3cret"), "{e}");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read_password(&p).unwrap(), "s3cret");
}

/// The lifecycle calls: suspend and resume (booleans from the client; the strings Plesk's own
/// modules send are accepted too), items with the revision bump, the documented conflict,
/// terminate and KA's 24204 on a second one, a refused downgrade's body kept verbatim.
#[tokio::test]
async fn suspends_resumes_changes_and_terminates_a_key() {
    let ka = FakeKa::start(&["PLESK-12-WEB-HOST-1M", "PLESK-12-WEB-PRO-1M", "PLESK-12-WEB-ADMIN-1M"]).await;
    ka.add_key("PLSK.12345678.0001");
    let c = client(&ka, ParentForm::KeyId, Duration::from_secs(5));
    let k = c.modify_key(12345678, &Modify::Suspended(true)).await.unwrap();
    assert!(k.suspended && ka.key(12345678).suspended);
    assert_eq!(ka.calls().last().unwrap().body, r#"{"suspended":true}"#);
    let k = c.modify_key(12345678, &Modify::Suspended(false)).await.unwrap();
    assert!(!k.suspended);

    // What sitejet / 360monitoring send: the strings, on the raw wire.
    let http = reqwest::Client::new();
    let put = |body: &'static str| {
        http.put(format!("{}keys/12345678?return-key-state=yes", ka.base_url()))
            .basic_auth(fake_ka::USER, Some(fake_ka::PASSWORD))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(put(r#"{"suspended":"true"}"#).await.unwrap().status(), 200);
    assert!(ka.key(12345678).suspended);
    assert_eq!(put(r#"{"suspended":"false"}"#).await.unwrap().status(), 200);
    assert!(!ka.key(12345678).suspended);
    // Suspend/resume cannot share a request with an items change (documented conflict).
    let r = put(r#"{"suspended":true,"items":[{"item":"PLESK-12-WEB-PRO-1M"}]}"#)
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let k = c
        .modify_key(12345678, &Modify::Items(vec!["PLESK-12-WEB-PRO-1M".into()]))
        .await
        .unwrap();
    assert_eq!(k.key_number, "PLSK.12345678.0002");
    assert_eq!(k.items, vec!["PLESK-12-WEB-PRO-1M".to_string()]);
    ka.refuse_downgrade_to(Some("PLESK-12-WEB-ADMIN-1M"));
    let e = c
        .modify_key(12345678, &Modify::Items(vec!["PLESK-12-WEB-ADMIN-1M".into()]))
        .await
        .unwrap_err();
    assert!(matches!(&e, KaError::Api { status: 400, .. }), "{e}");
    assert!(
        e.verbatim().contains("Downgrade of the license key is not allowed"),
        "{e}"
    );
    assert_eq!(ka.key(12345678).key_number, "PLSK.12345678.0002");

    let k = c.terminate_key(12345678).await.unwrap().unwrap();
    assert!(k.terminated);
    let e = c.terminate_key(12345678).await.unwrap_err();
    assert!(e.verbatim().contains("\"type\":\"24204\""), "{e}");
    let e = c.modify_key(12345678, &Modify::Suspended(true)).await.unwrap_err();
    assert!(e.verbatim().contains("24204"), "{e}");
}

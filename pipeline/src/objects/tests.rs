use super::*;

#[tokio::test]
async fn local_store_fetches_and_classifies() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("bucket/a")).unwrap();
    std::fs::write(dir.path().join("bucket/a/one.dcm"), b"0123456789").unwrap();
    let config = ObjectsConfig {
        kind: ObjectStoreKind::Local,
        root: Some(dir.path().into()),
        max_object_bytes: 5,
        ..Default::default()
    };
    let fetcher = ObjectFetcher::new(config.clone());
    let loc = |key: &str| ObjectLocation { bucket: "bucket".into(), key: key.into(), size: None, etag: None };
    let err = fetcher.fetch(&loc("a/one.dcm")).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::ObjectTooLarge);
    let err = fetcher.fetch(&loc("a/missing.dcm")).await.unwrap_err();
    assert_eq!(err.class, ErrorClass::MissingObject);
    assert!(err.reason.contains("bucket/a/missing.dcm"), "{}", err.reason);

    let fetcher = ObjectFetcher::new(ObjectsConfig { max_object_bytes: 100, ..config });
    let (bytes, _) = fetcher.fetch(&loc("a/one.dcm")).await.unwrap();
    assert_eq!(&bytes[..], b"0123456789");
}

#[test]
fn the_store_retry_keeps_object_stores_defaults_and_our_limits() {
    let retry = store_retry(request_retry(5, Duration::from_secs(30)));
    let defaults = BackoffConfig::default();
    assert_eq!(retry.max_retries, 5);
    assert_eq!(retry.retry_timeout, Duration::from_secs(180), "one request timeout per try");
    assert_eq!((retry.backoff.init_backoff, retry.backoff.max_backoff), (defaults.init_backoff, defaults.max_backoff));
    assert_eq!(retry.backoff.base, defaults.base);
    assert_eq!(store_retry(request_retry(0, Duration::from_secs(1))).max_retries, 0, "no retries: one try");
}

use rdkafka::mocking::MockCluster;
use rdkafka::producer::BaseRecord;

use super::*;

/// Every record applied, in order: `(key, value)`.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Option<String>)>>);

impl TableSubscriber for Recorder {
    fn apply(&self, key: &[u8], value: Option<&[u8]>) {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        self.0.lock().unwrap().push((text(key), value.map(text)));
    }
}

fn kafka_config(brokers: &str) -> KafkaConfig {
    toml::from_str(&format!("brokers = \"{brokers}\"\ninput_topic = \"in\"\n")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_writer_and_table_reader_round_trip_on_a_mock_cluster() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("links", 2, 1).unwrap();
    let config = kafka_config(&cluster.bootstrap_servers());

    let writer = KafkaTopicWriter::new(&config).unwrap();
    for (key, value) in [("a", "1"), ("b", "2"), ("a", "3")] {
        writer.send("links", key, value.as_bytes().to_vec()).await.unwrap();
    }

    let reader = KafkaTableReader::new(&config);
    let table = Arc::new(Recorder::default());
    let follower = reader.follow("links", table.clone()).unwrap();
    follower.catch_up(Duration::from_secs(20)).await.unwrap();
    let seen = table.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let of_a: Vec<_> = seen.iter().filter(|(k, _)| k == "a").map(|(_, v)| v.clone()).collect();
    assert_eq!(of_a, [Some("1".to_string()), Some("3".to_string())], "per-key order is kept");

    // A tombstone, then catching up again sees it.
    let producer: rdkafka::producer::BaseProducer =
        producer_config(&config.brokers, &BTreeMap::new()).create().unwrap();
    producer.send(BaseRecord::<str, [u8]>::to("links").key("b")).map_err(|(e, _)| e).unwrap();
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(10)).unwrap();
    follower.catch_up(Duration::from_secs(20)).await.unwrap();
    let last = table.0.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last, ("b".to_string(), None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_reader_asks_to_create_a_missing_topic() {
    let cluster = MockCluster::new(1).unwrap();
    let reader = KafkaTableReader::new(&kafka_config(&cluster.bootstrap_servers()));
    let err = reader.follow("no-such-topic", Arc::new(Recorder::default())).err().unwrap();
    assert_eq!(err.destination, "no-such-topic");
    assert!(err.message.contains("create it"), "{err}");
    assert!(!err.retryable);
}

#[tokio::test]
async fn store_writer_puts_parts_as_one_object() {
    let dir = tempfile::tempdir().unwrap();
    let config = ObjectsConfig {
        kind: crate::config::ObjectStoreKind::Local,
        root: Some(dir.path().into()),
        ..Default::default()
    };
    let writer = StoreObjectWriter::new(config);
    let parts = vec![Bytes::from_static(b"head-"), Bytes::from_static(b"body")];
    writer.put("exports", "a/b/c.dcm", parts).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("exports/a/b/c.dcm")).unwrap(), b"head-body");
}

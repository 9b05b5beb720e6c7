use std::sync::Mutex;

use super::*;
use crate::config::ObjectsConfig;
use crate::lake::test_support::{event, uids, NOV_28};

#[test]
fn a_failed_upload_waits_1_s_doubling_to_60_s() {
    let delays: Vec<u64> = (1..=8).map(|failures| UPLOAD_RETRY.delay(failures, None).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
    assert!((1..=20).all(|n| RECV_RETRY.delay(n, None) == Duration::from_millis(500)));
}

const PHI: &str = "DOE^JOHN";

#[test]
fn an_unreadable_record_is_described_without_its_values() {
    // The patient's name where a number belongs: serde_json's own message quotes it.
    let mut json = serde_json::to_value(event(NOV_28, true)).unwrap();
    json["time_ms"] = serde_json::Value::String(PHI.into());
    let bytes = serde_json::to_vec(&json).unwrap();
    assert!(serde_json::from_slice::<OutcomeEvent>(&bytes).unwrap_err().to_string().contains(PHI));
    let error = read_record::<OutcomeEvent>("outcome record", &bytes).unwrap_err();
    let text = error.to_string();
    assert!(!text.contains(PHI) && !format!("{error:?}").contains(PHI), "{text}");
    assert!(text.contains("outcome record") && text.contains("data error"), "{text}");

    let feedback = format!(
        r#"{{"sop_uid_pseudo":"2.25.1","model":"m","version":"1","finding_code":"1","verdict":"{PHI}","time_ms":1}}"#
    );
    let error = read_record::<Feedback>("feedback record", feedback.as_bytes()).unwrap_err();
    assert!(serde_json::from_slice::<Feedback>(feedback.as_bytes()).unwrap_err().to_string().contains(PHI));
    assert!(!error.to_string().contains(PHI), "{error}");
    assert!(!read_record::<Feedback>("feedback record", b"{\"model\": DOE^JOHN}")
        .unwrap_err()
        .to_string()
        .contains(PHI));
}

/// The partitions' side of the lake, recorded.
#[derive(Default)]
struct Partitions {
    commits: Mutex<Vec<Vec<(String, i32, Offset)>>>,
    pauses: Mutex<u32>,
    resumes: Mutex<u32>,
}

impl LakePartitions for Partitions {
    fn commit_read(&self, offsets: &TopicPartitionList) -> KafkaResult<()> {
        let list = offsets.elements().iter().map(|e| (e.topic().to_string(), e.partition(), e.offset())).collect();
        self.commits.lock().unwrap().push(list);
        Ok(())
    }

    fn pause_reading(&self) -> KafkaResult<()> {
        *self.pauses.lock().unwrap() += 1;
        Ok(())
    }

    fn resume_reading(&self) -> KafkaResult<()> {
        *self.resumes.lock().unwrap() += 1;
        Ok(())
    }
}

fn lake(root: &std::path::Path, flush_rows: usize) -> Lake<Partitions> {
    let config: LakeConfig =
        toml::from_str(&format!("bucket = \"lake\"\nkey_env = \"K\"\nflush_rows = {flush_rows}\nflush_secs = 3600"))
            .unwrap();
    let objects: ObjectsConfig =
        toml::from_str(&format!("kind = \"local\"\nroot = {:?}", root.display().to_string())).unwrap();
    Lake {
        limit: BufferLimit::rows(config.flush_rows),
        paused: false,
        lake: config,
        outcome_topic: "outcomes".into(),
        uids: uids(),
        objects: ObjectFetcher::new(objects),
        consumer: Partitions::default(),
        metrics: LakeMetrics::new(),
        buffer: LakeBuffer::default(),
        read: BTreeMap::new(),
        retry_at: None,
        upload_failures: 0,
    }
}

#[tokio::test]
async fn a_full_buffer_the_store_does_not_take_pauses_reading_until_it_does() {
    let root = tempfile::tempdir().unwrap();
    // The store is down: its bucket folder cannot be made (a retryable failure).
    let bucket = root.path().join("lake");
    std::fs::write(&bucket, b"not a folder").unwrap();
    let mut lake = lake(root.path(), 3);
    let record = serde_json::to_vec(&event(NOV_28, true)).unwrap();
    for offset in 0..2 {
        lake.take("outcomes", 0, offset, &record);
        lake.after_take().await.unwrap();
    }
    assert!(!lake.paused, "under the bound the lake reads on");
    lake.take("outcomes", 0, 2, &record);
    lake.after_take().await.unwrap();
    assert!(lake.paused, "at the bound, with the store down, the lake stops reading");
    assert_eq!(*lake.consumer.pauses.lock().unwrap(), 1);
    assert_eq!(lake.buffer.rows(), 3, "nothing dropped");
    assert!(lake.consumer.commits.lock().unwrap().is_empty(), "nothing committed that is not written");

    // A record fetched before the pause took effect (or of a partition a rebalance assigned)
    // pauses again; the buffer stays bounded by what was in flight, not by the outage.
    lake.take("outcomes", 1, 0, &record);
    lake.after_take().await.unwrap();
    assert_eq!(*lake.consumer.pauses.lock().unwrap(), 2);
    assert_eq!(*lake.consumer.resumes.lock().unwrap(), 0);

    // The store is back; once the retry is due, the tick writes the rows and reading resumes.
    std::fs::remove_file(&bucket).unwrap();
    lake.retry_at = None;
    lake.on_tick().await.unwrap();
    assert!(!lake.paused);
    assert_eq!(*lake.consumer.resumes.lock().unwrap(), 1);
    assert_eq!(lake.buffer.rows(), 0);
    let commits = lake.consumer.commits.lock().unwrap();
    assert_eq!(
        *commits,
        [vec![("outcomes".to_string(), 0, Offset::Offset(3)), ("outcomes".to_string(), 1, Offset::Offset(1))]]
    );
    assert!(std::fs::read_dir(&bucket).unwrap().next().is_some(), "the files are in the store");
}

use super::*;

/// The waits the stage had before it used `Backoff`: `100 ms << attempt`, from the sixth
/// attempt on 6.4 s.
#[test]
fn an_operator_retry_without_a_wait_of_its_own_waits_as_before() {
    for attempt in 1..=12u32 {
        let before = Duration::from_millis(100 << attempt.min(6));
        assert_eq!(OPERATOR_RETRY.delay(attempt, None), before, "attempt {attempt}");
    }
}

mod panics {
    use bytes::Bytes;
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::{tags, uids};
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    use radstream_schemas::ObjectLocation;

    use super::*;
    use crate::runtime::tests::{test_shared, track_instance};

    /// Looks like patient data; must appear in no dead letter.
    const PHI: &str = "DOE^JOHN";

    fn envelope(ticket: u64) -> Envelope {
        let element = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
        let dataset = InMemDicomObject::from_element_iter([
            element(tags::SOP_CLASS_UID, VR::UI, uids::SECONDARY_CAPTURE_IMAGE_STORAGE),
            element(tags::SOP_INSTANCE_UID, VR::UI, &format!("1.2.826.0.1.3680043.8.498.10.{ticket}")),
            element(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.8.498.1"),
            element(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.8.498.2"),
            element(tags::MODALITY, VR::CS, "OT"),
        ]);
        let header =
            dataset.with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)).unwrap();
        let mut object = Vec::new();
        header.write_all(&mut object).unwrap();
        let location =
            ObjectLocation { bucket: "dicom".into(), key: format!("incoming/{ticket}.dcm"), size: None, etag: None };
        Envelope::from_part10(ticket, location, Bytes::from(object)).unwrap()
    }

    /// Panics on its first `panics` batches, as an operator whose blocking task panicked and
    /// whose `.expect` on the join passed the panic on; forwards after that.
    struct PanickingOperator {
        panics: usize,
    }

    #[async_trait::async_trait]
    impl Operator for PanickingOperator {
        async fn process_batch(&mut self, batch: Vec<Envelope>) -> Vec<Processed> {
            if self.panics > 0 {
                self.panics -= 1;
                let joined = tokio::task::spawn_blocking(|| panic!("cannot read PatientName {PHI}")).await;
                joined.expect("the blocking task panicked");
            }
            batch.into_iter().map(Processed::forward).collect()
        }
    }

    /// Issue 16, item 5: a panic in an operator used to end the stage's task, leaving its
    /// batch without an outcome (and its partition without commits). Every envelope of the
    /// batch is now dead-lettered as `internal` naming the operator, nothing of the panic's
    /// message is kept, and the stage goes on with the next batch.
    #[tokio::test]
    async fn a_panicking_operator_dead_letters_its_batch_as_internal_and_the_stage_goes_on() {
        let shared = test_shared("batch_size = 2\nbatch_linger_ms = 60000", "");
        let (tx, rx) = mpsc::channel(8);
        for ticket in 1..=3 {
            track_instance(&shared, ticket);
            tx.send(envelope(ticket)).await.unwrap();
        }
        drop(tx);
        let (completion_tx, mut completions) = mpsc::unbounded_channel();
        let op = Box::new(PanickingOperator { panics: 1 });
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let stage = tokio::spawn(operator_stage(shared.clone(), "pseudonymize", op, rx, None, completion_tx));
        stage.await.expect("the stage's task survives the operator's panic");

        let mut finished = Vec::new();
        while let Some(c) = completions.recv().await {
            finished.push(c);
        }
        finished.sort_by_key(|c| c.ticket);
        assert_eq!(finished.len(), 3, "{finished:?}");
        for c in &finished[..2] {
            let Finish::DeadLetter { operator, class, reason, .. } = &c.finish else { panic!("{c:?}") };
            assert_eq!((operator.as_str(), *class), ("pseudonymize", ErrorClass::Internal));
            assert!(reason.contains("operator pseudonymize panicked"), "{reason}");
            assert!(!reason.contains(PHI) && !reason.contains("PatientName"), "{reason}");
        }
        assert!(matches!(finished[2].finish, Finish::Delivered), "{:?}", finished[2]);
        assert!(shared.failure.get().is_none(), "a caught panic does not stop the worker");
    }
}

//! The envelope that carries one DICOM instance through the operator chain.

use std::time::Instant;

use bytes::Bytes;
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};
use radstream_schemas::{ErrorClass, InstanceEvent, ObjectLocation, Priority};

use super::error::OperatorError;
use super::results::{InferenceResult, ResultSet};
use crate::dicom::datetime::unix_ms_of_date_time;
use crate::dicom::elements::element_text;
use crate::dicom::header::{event_from_header, parse_header};

/// One DICOM instance on its way through the chain.
#[derive(Debug)]
pub struct Envelope {
    /// Opaque runtime handle (the runtime maps it to a Kafka partition and offset). Operators
    /// must carry it through unchanged.
    pub ticket: u64,
    /// The event that announced the instance, completed from the object header when the source
    /// only knew the object key (S3 notifications).
    pub event: InstanceEvent,
    /// The whole Part-10 object as fetched ([`object`](Envelope::object)). Private so that it
    /// changes only with `header`, through [`replace_object`](Envelope::replace_object).
    object: Bytes,
    /// The parsed header of `object` ([`header`](Envelope::header)): file meta and the data set
    /// up to (not including) Pixel Data, which is never decoded here.
    header: FileDicomObject<InMemDicomObject>,
    /// Branch chosen by routing (for example the model name), if routed.
    pub branch: Option<String>,
    /// The model a routing rule chose for the instance (the manifest's `name`); `None` when no
    /// rule named one, and then every `preprocess`/`infer` pair of the chain takes it.
    pub model: Option<String>,
    /// When the runtime read the event from the source.
    pub received_at: Instant,
    /// When it was queued for the operator it is waiting for (set by the runtime on each hand
    /// over): the start of its queue delay.
    pub queued_at: Instant,
    /// The model input the `preprocess` operator made from the pixel data (`[N, C, H, W]`, one
    /// image per frame); `None` before it runs. Shared, so that handing it to inference copies
    /// nothing.
    pub tensor: Option<std::sync::Arc<radstream_kernels::Tensor>>,
    /// What the `infer` operator's model said about the instance (model identity, per-frame
    /// scores, findings); `None` before it runs. Shared: result writers only read it.
    pub results: Option<std::sync::Arc<InferenceResult>>,
    /// Where each image of `tensor` lies in the patient (position and orientation per frame),
    /// set by `preprocess` for a model of whole series: series assembly sorts slices by it.
    pub geometry: Option<std::sync::Arc<[radstream_kernels::SliceGeometry]>>,
    /// The result objects the `results` step made of `results` (SR, SEG, overlays), which a
    /// sink delivers instead of the instance itself; `None` before it runs. Shared: every
    /// instance of a series carries its series' objects.
    pub outputs: Option<std::sync::Arc<ResultSet>>,
    /// Time spent in each stage so far (its queue and its operator), in milliseconds, in chain
    /// order; set by the runtime for the outcome record.
    pub stage_ms: Vec<(&'static str, f64)>,
}

impl Envelope {
    /// An envelope of `object`, whose parsed header is `header`, announced by `event` and read
    /// from the source at `received_at` (also its `queued_at` until the runtime hands it over):
    /// not routed, no model chosen, nothing attached by an operator yet, no stage times.
    pub fn new(
        ticket: u64,
        event: InstanceEvent,
        object: Bytes,
        header: FileDicomObject<InMemDicomObject>,
        received_at: Instant,
    ) -> Envelope {
        Envelope {
            ticket,
            event,
            object,
            header,
            branch: None,
            model: None,
            received_at,
            queued_at: received_at,
            tensor: None,
            results: None,
            geometry: None,
            outputs: None,
            stage_ms: Vec::new(),
        }
    }

    /// An envelope for a whole Part-10 object, its event built from the header (routine
    /// priority, no source, time 0): for tools and tests that have a file rather than an event.
    pub fn from_part10(ticket: u64, location: ObjectLocation, object: Bytes) -> Result<Envelope, String> {
        let header = parse_header(&object)?;
        let event = event_from_header(&header, location, 0, Priority::Routine, None)?;
        Ok(Envelope::new(ticket, event, object, header, Instant::now()))
    }

    /// The whole Part-10 object, as fetched or as an operator last rewrote it.
    pub fn object(&self) -> &Bytes {
        &self.object
    }

    /// The parsed header of [`object`](Envelope::object): file meta and the data set up to
    /// (not including) Pixel Data.
    pub fn header(&self) -> &FileDicomObject<InMemDicomObject> {
        &self.header
    }

    /// Replaces the object with `object`, whose header is `header` (the caller has parsed it,
    /// usually with [`parse_header`], or built it): the two fields always describe the same
    /// bytes.
    pub fn replace_object(&mut self, object: Bytes, header: FileDicomObject<InMemDicomObject>) {
        self.object = object;
        self.header = header;
    }

    /// Replaces the object with `object`, an operator's rewrite of it, parsing its header again
    /// so that the two stay in step. A rewrite that does not parse is the operator's bug, not the
    /// input's: it is dead-lettered as `internal`, with `operator` named in the reason.
    pub fn replace_with_rewrite(&mut self, operator: &str, object: Bytes) -> Result<(), OperatorError> {
        let header = parse_header(&object).map_err(|e| {
            OperatorError::dead_letter(
                ErrorClass::Internal,
                format!("{operator}: the rewritten header does not parse: {e}"),
            )
        })?;
        self.replace_object(object, header);
        Ok(())
    }

    /// `bucket/key` of the object: the identifier to use in logs and errors.
    pub fn object_key(&self) -> String {
        self.event.object.display_key()
    }
}

/// The content time of the objects made of a result: the event's time for a result of one
/// instance, the series' date and time (else the event's) for a result of a whole series, so
/// that every instance of the series gives the same objects. Never the clock: a replay gives
/// the same bytes.
pub fn content_time_ms(envelope: &Envelope, result: &InferenceResult) -> i64 {
    match result.series {
        Some(_) => series_time_ms(envelope).unwrap_or(envelope.event.event_time_ms),
        None => envelope.event.event_time_ms,
    }
}

/// SeriesDate and SeriesTime (else the study's) as Unix milliseconds, read as UTC: the same for
/// every instance of a series, so its report has one content time whichever instance built it.
fn series_time_ms(envelope: &Envelope) -> Option<i64> {
    let pair = |date, time| Some((element_text(envelope.header(), date)?, element_text(envelope.header(), time)));
    let (date, time) =
        pair(tags::SERIES_DATE, tags::SERIES_TIME).or_else(|| pair(tags::STUDY_DATE, tags::STUDY_TIME))?;
    unix_ms_of_date_time(&date, time.as_deref().unwrap_or(""))
}

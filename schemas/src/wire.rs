//! Decoding a Kafka message value into an event, in one of the supported wire formats.
//!
//! Every decoded event is validated (UIDs, bucket, key) before it is returned, so the runtime
//! never fetches an object for an event it would reject later.
//!
//! Errors never quote values from the message: a message may carry patient data, and error
//! messages end up in logs and dead letters. They name fields, positions and kinds instead.

pub(crate) mod error;

use std::collections::HashMap;

use apache_avro::error::Details;
use apache_avro::Schema;
use serde::{Deserialize, Serialize};

use self::error::serde_problem;
pub use self::error::{json_error, DecodeError};
use crate::instance_event::{InstanceEvent, ObjectLocation, INSTANCE_EVENT_V1_AVSC};
pub use crate::s3_notification::CreatedObject;

/// The Confluent wire format's first byte.
const CONFLUENT_MAGIC: u8 = 0x00;
/// Magic byte plus the 4-byte big-endian schema id.
const CONFLUENT_HEADER_LEN: usize = 5;
/// DICOM PS3.5 §9.1: a UID is at most 64 characters.
const MAX_UID_LEN: usize = 64;

/// How the values of a topic are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventFormat {
    /// An `InstanceEvent` as Avro binary in the Confluent Schema Registry wire format: magic byte
    /// 0x00, the writer schema id (4 bytes, big-endian), then the datum.
    ConfluentAvro,
    /// An `InstanceEvent` as a JSON object with the Avro record's field names.
    Json,
    /// An S3 (AWS or MinIO) event notification; only `ObjectCreated:*` records are kept.
    S3Notification,
}

impl EventFormat {
    /// The snake_case name, as written in the configuration and used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            EventFormat::ConfluentAvro => "confluent_avro",
            EventFormat::Json => "json",
            EventFormat::S3Notification => "s3_notification",
        }
    }
}

/// What one message value decodes to.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one payload per message, moved once into the envelope; boxing would cost an \
              allocation for the common variant"
)]
pub enum EventPayload {
    /// A full instance event (Avro or JSON formats).
    Instance(InstanceEvent),
    /// Objects an S3 notification reports as created; empty when the notification held no
    /// `ObjectCreated:*` record (an intentional drop, not an error).
    ObjectsCreated(Vec<CreatedObject>),
}

/// Writer schemas by Confluent schema id, plus the v1 reader schema every datum resolves into.
#[derive(Debug, Clone)]
pub struct SchemaSet {
    by_id: HashMap<u32, Schema>,
    /// Used for any id not in `by_id`: the "local schema file" mode, without a registry.
    default: Option<Schema>,
    /// `InstanceEvent` v1, parsed once rather than per message.
    reader: Schema,
}

impl Default for SchemaSet {
    fn default() -> Self {
        Self::new()
    }
}

impl SchemaSet {
    /// An empty set: every schema id is unknown until [`insert`](Self::insert)ed.
    pub fn new() -> Self {
        Self { by_id: HashMap::new(), default: None, reader: Self::v1() }
    }

    /// A set that decodes every schema id not inserted with `schema`.
    pub fn with_default(schema: Schema) -> Self {
        Self { default: Some(schema), ..Self::new() }
    }

    /// Registers the writer schema of `id`, replacing any previous one.
    pub fn insert(&mut self, id: u32, schema: Schema) {
        self.by_id.insert(id, schema);
    }

    /// Whether `id` was inserted (the default schema does not count).
    pub fn contains(&self, id: u32) -> bool {
        self.by_id.contains_key(&id)
    }

    /// Parses an Avro schema (from a schema registry response or a local `.avsc` file).
    pub fn parse_schema(json: &str) -> Result<Schema, DecodeError> {
        // A schema is not message data, so apache-avro's own message is safe to keep.
        Schema::parse_str(json).map_err(|e| DecodeError::Schema(e.to_string()))
    }

    /// The committed `InstanceEvent` v1 schema.
    pub fn v1() -> Schema {
        Schema::parse_str(INSTANCE_EVENT_V1_AVSC)
            .expect("avro/instance_event.v1.avsc is committed and parsed by the tests")
    }

    fn writer(&self, id: u32) -> Option<&Schema> {
        self.by_id.get(&id).or(self.default.as_ref())
    }
}

/// The writer schema id of a value in the Confluent wire format.
pub fn confluent_schema_id(value: &[u8]) -> Result<u32, DecodeError> {
    let Some(&first_byte) = value.first() else {
        return Err(DecodeError::Empty);
    };
    if first_byte != CONFLUENT_MAGIC {
        return Err(DecodeError::NotConfluentFramed { first_byte });
    }
    match value.get(1..CONFLUENT_HEADER_LEN) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(DecodeError::TruncatedFrame { len: value.len() }),
    }
}

/// Decodes and validates one message value.
pub fn decode(format: EventFormat, value: &[u8], schemas: &SchemaSet) -> Result<EventPayload, DecodeError> {
    if value.is_empty() {
        return Err(DecodeError::Empty);
    }
    match format {
        EventFormat::ConfluentAvro => {
            let event = decode_confluent(value, schemas)?;
            validate_event(&event)?;
            Ok(EventPayload::Instance(event))
        }
        EventFormat::Json => {
            let event: InstanceEvent =
                serde_json::from_slice(value).map_err(|e| json_error("InstanceEvent JSON", &e))?;
            validate_event(&event)?;
            Ok(EventPayload::Instance(event))
        }
        EventFormat::S3Notification => {
            let objects = crate::s3_notification::parse(value)?;
            for object in &objects {
                validate_location(&object.location)?;
            }
            Ok(EventPayload::ObjectsCreated(objects))
        }
    }
}

/// `event` as JSON, the [`EventFormat::Json`] format.
pub fn encode_json(event: &InstanceEvent) -> Vec<u8> {
    serde_json::to_vec(event).expect("InstanceEvent has only string keys and serializes to JSON")
}

/// `event` in the Confluent wire format, written with `schema` registered as `schema_id`.
pub fn encode_confluent(event: &InstanceEvent, schema_id: u32, schema: &Schema) -> Result<Vec<u8>, DecodeError> {
    let encode_error = |e: apache_avro::Error| DecodeError::Encode(avro_detail(&e));
    // `to_value` gives strings for enums and plain longs for timestamps; resolving against the
    // schema turns them into what `to_avro_datum` validates against.
    let value = apache_avro::to_value(event).and_then(|v| v.resolve(schema)).map_err(encode_error)?;
    let datum = apache_avro::to_avro_datum(schema, value).map_err(encode_error)?;
    let mut out = Vec::with_capacity(CONFLUENT_HEADER_LEN + datum.len());
    out.push(CONFLUENT_MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(&datum);
    Ok(out)
}

fn decode_confluent(value: &[u8], schemas: &SchemaSet) -> Result<InstanceEvent, DecodeError> {
    let id = confluent_schema_id(value)?;
    let writer = schemas.writer(id).ok_or(DecodeError::UnknownSchemaId(id))?;
    let mut datum = &value[CONFLUENT_HEADER_LEN..];
    // Decoding and resolution are separate steps so the error can say which one failed:
    // corrupt bytes and an incompatible schema need different fixes.
    let written = apache_avro::from_avro_datum(writer, &mut datum, None).map_err(|e| {
        DecodeError::Avro(format!("the bytes do not decode with writer schema id {id} ({})", avro_detail(&e)))
    })?;
    if !datum.is_empty() {
        return Err(DecodeError::Avro(format!(
            "{} byte(s) are left over after the datum, so writer schema id {id} is not the schema \
             it was written with",
            datum.len()
        )));
    }
    let resolved = written.resolve(&schemas.reader).map_err(|e| {
        DecodeError::Avro(format!(
            "writer schema id {id} does not resolve into the v1 reader schema ({})",
            avro_detail(&e)
        ))
    })?;
    apache_avro::from_value(&resolved)
        .map_err(|e| DecodeError::Avro(format!("the resolved record does not fit InstanceEvent ({})", avro_detail(&e))))
}

fn validate_event(event: &InstanceEvent) -> Result<(), DecodeError> {
    validate_location(&event.object)?;
    validate_uid("study_instance_uid", &event.study_instance_uid)?;
    validate_uid("series_instance_uid", &event.series_instance_uid)?;
    validate_uid("sop_instance_uid", &event.sop_instance_uid)?;
    validate_uid("sop_class_uid", &event.sop_class_uid)
}

fn validate_location(location: &ObjectLocation) -> Result<(), DecodeError> {
    if location.bucket.is_empty() {
        return Err(invalid("object.bucket", "is empty".to_owned()));
    }
    if location.key.is_empty() {
        return Err(invalid("object.key", "is empty".to_owned()));
    }
    Ok(())
}

fn validate_uid(field: &'static str, uid: &str) -> Result<(), DecodeError> {
    if uid.is_empty() {
        return Err(invalid(field, "is empty".to_owned()));
    }
    if let Some(position) = uid.bytes().position(|b| !(b.is_ascii_digit() || b == b'.')) {
        return Err(invalid(
            field,
            format!(
                "has a character other than a digit or '.' at byte {position}; a DICOM UID is \
                 digits and dots only (trailing padding must be stripped)"
            ),
        ));
    }
    if uid.len() > MAX_UID_LEN {
        return Err(invalid(field, format!("is {} characters long; a DICOM UID has at most {MAX_UID_LEN}", uid.len())));
    }
    Ok(())
}

fn invalid(field: &'static str, problem: String) -> DecodeError {
    DecodeError::InvalidField { field, problem }
}

/// Describes an apache-avro error without the values its `Display` quotes; keeps schema-side
/// information (field names, expected types) and the error kind.
fn avro_detail(error: &apache_avro::Error) -> String {
    let details = error.details();
    match details {
        Details::GetField(name) => format!("field `{name}` is missing and has no default"),
        Details::DeserializeValue(message) | Details::SerializeValue(message) => serde_problem(message),
        Details::ReadBoolean(_)
        | Details::ReadBytes(_)
        | Details::ReadString(_)
        | Details::ReadDouble(_)
        | Details::ReadFloat(_)
        | Details::ReadDuration(_)
        | Details::ReadFixed(..)
        | Details::ReadVariableIntegerBytes(_) => "the datum ends early".to_owned(),
        Details::IntegerOverflow | Details::ZagI32(..) => "a variable-length integer is malformed".to_owned(),
        Details::MemoryAllocation { desired, maximum } => {
            format!("a length prefix asks for {desired} bytes, over the {maximum}-byte limit")
        }
        Details::ConvertToUtf8(_) | Details::ConvertToUtf8Error(_) => "a string is not valid UTF-8".to_owned(),
        Details::GetUnionVariant { index, num_variants } => {
            format!("union branch {index} does not exist (the union has {num_variants})")
        }
        Details::GetEnumValue { index, nsymbols } => {
            format!("enum index {index} does not exist (the enum has {nsymbols} symbols)")
        }
        Details::GetEnumSymbol(_) | Details::GetEnumDefault { .. } => {
            "an enum symbol is unknown to the reader and the reader enum has no default".to_owned()
        }
        Details::FindUnionVariant { .. } => "a value matches no branch of its union".to_owned(),
        Details::Validation | Details::ValidationWithReason { .. } => "a value does not match its schema".to_owned(),
        _ => expected_kind(details),
    }
}

/// For the `Expected Value::X, got: <value>` family: the part before the value, else a
/// generic description (fail closed: never the whole message).
fn expected_kind(details: &Details) -> String {
    let text = details.to_string();
    match text.find(", got") {
        Some(end) if text.starts_with("Expected ") || text.starts_with("Record with fields") => {
            format!("type mismatch: {}", &text[..end])
        }
        _ => "apache-avro error; detail withheld because it may quote message values".to_owned(),
    }
}

#[cfg(test)]
mod tests;

use arrow::array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;
use crate::lake::test_support::{event, uids, NOV_28, STUDY};

#[test]
fn parquet_round_trip() {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Float32Type, Int64Type, TimestampMillisecondType};
    let uids = uids();
    let rows =
        [OutcomeRow::new(&event(NOV_28, true), 0, 1, &uids), OutcomeRow::new(&event(NOV_28 + 5, false), 0, 2, &uids)];
    let bytes = to_parquet(&outcome_batch(&rows).unwrap()).unwrap();
    assert!(!bytes.windows(STUDY.len()).any(|w| w == STUDY.as_bytes()), "an original UID is in the file");
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().build().unwrap();
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 1);
    let batch = &batches[0];
    assert_eq!(batch.schema(), outcome_schema());
    assert_eq!(batch.num_rows(), 2);
    let col = |name: &str| batch.column_by_name(name).unwrap().clone();
    assert_eq!(col("time").as_primitive::<TimestampMillisecondType>().value(1), NOV_28 + 5);
    let sop = col("sop_uid_pseudo");
    assert_eq!(sop.as_string::<i32>().value(0), rows[0].sop_uid_pseudo.as_deref().unwrap());
    let version = col("model_version");
    assert_eq!((version.as_string::<i32>().value(0), version.is_null(1)), ("0.1.0", true));
    let findings = col("findings");
    let findings = findings.as_list::<i32>();
    assert_eq!((findings.value_length(0), findings.value_length(1)), (1, 0));
    let first = findings.value(0);
    let first = first.as_struct();
    assert_eq!(first.column_by_name("code").unwrap().as_string::<i32>().value(0), "1386000");
    assert_eq!(first.column_by_name("score").unwrap().as_primitive::<Float32Type>().value(0), 0.93);
    assert!(first.column_by_name("critical").unwrap().as_boolean().value(0));
    let stages = col("stages");
    let stages = stages.as_list::<i32>().value(0);
    let operators = stages.as_struct().column_by_name("operator").unwrap().as_string::<i32>().clone();
    assert_eq!(operators.iter().flatten().collect::<Vec<_>>(), ["route", "infer"]);
    assert_eq!(col("series_revision").as_primitive::<Int64Type>().value(0), 2);
    assert_eq!(col("outcome_offset").as_primitive::<Int64Type>().values().to_vec(), [1, 2]);
}

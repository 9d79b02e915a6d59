//! `PartialBatch`: cutting a batch request in two and folding the withheld half back into
//! the upstream's answer, as unprocessed items or per-statement errors.

use serde_json::{Map, Value, json};

pub(super) type Object = Map<String, Value>;

/// A batch request cut in two: what to forward (if anything is left) and how to fold the
/// withheld entries into the upstream's answer.
pub(super) struct Split {
    pub(super) forward: Option<Object>,
    pub(super) withheld_count: usize,
    pub(super) merge: Box<dyn FnOnce(Object) -> Object + Send>,
}

/// Picks which of `n >= 1` entries to withhold: each with probability one half, and at
/// least one.
fn pick_withheld(n: usize, rng: &mut fastrand::Rng) -> Vec<bool> {
    let mut withheld: Vec<bool> = (0..n).map(|_| rng.bool()).collect();
    if !withheld.contains(&true) {
        withheld[rng.usize(..n)] = true;
    }
    withheld
}

/// `BatchWriteItem`: some requests go to `UnprocessedItems` without being executed.
pub(super) fn split_batch_write(mut request: Object, rng: &mut fastrand::Rng) -> Option<Split> {
    let Some(Value::Object(items)) = request.remove("RequestItems") else {
        return None;
    };
    let total: usize = items
        .values()
        .map(|v| v.as_array().map_or(0, Vec::len))
        .sum();
    if total == 0 {
        request.insert("RequestItems".into(), Value::Object(items));
        return None;
    }
    let mut withheld_flags = pick_withheld(total, rng).into_iter();
    let mut kept = Object::new();
    let mut withheld = Object::new();
    for (table, entries) in items {
        let entries = match entries {
            Value::Array(entries) => entries,
            other => {
                kept.insert(table, other);
                continue;
            }
        };
        let (mut keep, mut hold) = (Vec::new(), Vec::new());
        for entry in entries {
            if withheld_flags.next().unwrap_or(false) {
                hold.push(entry);
            } else {
                keep.push(entry);
            }
        }
        if !keep.is_empty() {
            kept.insert(table.clone(), Value::Array(keep));
        }
        if !hold.is_empty() {
            withheld.insert(table, Value::Array(hold));
        }
    }
    let withheld_count = withheld
        .values()
        .map(|v| v.as_array().map_or(0, Vec::len))
        .sum();
    let forward = (!kept.is_empty()).then(|| {
        request.insert("RequestItems".into(), Value::Object(kept));
        request
    });
    Some(Split {
        forward,
        withheld_count,
        merge: Box::new(move |mut answer| {
            let unprocessed = answer
                .entry("UnprocessedItems")
                .or_insert_with(|| Value::Object(Object::new()));
            if !unprocessed.is_object() {
                *unprocessed = Value::Object(Object::new());
            }
            if let Value::Object(unprocessed) = unprocessed {
                for (table, entries) in withheld {
                    let slot = unprocessed
                        .entry(table)
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let (Value::Array(slot), Value::Array(entries)) = (slot, entries) {
                        slot.extend(entries);
                    }
                }
            }
            answer
        }),
    })
}

/// The per-statement error codes DynamoDB returns for capacity and server trouble.
const STATEMENT_ERRORS: [(&str, &str); 3] = [
    (
        "ThrottlingError",
        "Throughput exceeds the current capacity for one or more global secondary indexes. \
         DynamoDB is automatically scaling your index so please try again shortly.",
    ),
    (
        "ProvisionedThroughputExceeded",
        "The level of configured provisioned throughput for the table was exceeded.",
    ),
    ("InternalServerError", "Internal server error"),
];

/// DynamoDB's answer to a statement it found invalid, as recorded against real AWS: a
/// per-statement error in a 200 answer.
const VALIDATION_ERROR: (&str, &str) = (
    "ValidationError",
    "One or more parameter values were invalid: Type mismatch for key",
);

/// `BatchExecuteStatement`: some statements are dropped, and answers take their places in
/// `Responses`: retryable errors (`PartialBatch`), a `ValidationError`
/// (`StatementValidationError`), or an empty member, a `RETURNING ALL OLD *` miss
/// (`StatementMiss`).
pub(super) fn split_batch_statements(
    mut request: Object,
    rng: &mut fastrand::Rng,
    fault: super::Fault,
) -> Option<Split> {
    let Some(Value::Array(statements)) = request.remove("Statements") else {
        return None;
    };
    if statements.is_empty() {
        request.insert("Statements".into(), Value::Array(statements));
        return None;
    }
    let withheld = pick_withheld(statements.len(), rng);
    let errors: Vec<Option<Value>> = withheld
        .iter()
        .map(|&w| {
            w.then(|| {
                let (code, message) = match fault {
                    super::Fault::StatementMiss => return json!({}),
                    super::Fault::StatementValidationError => VALIDATION_ERROR,
                    _ => STATEMENT_ERRORS[rng.usize(..STATEMENT_ERRORS.len())],
                };
                json!({ "Error": { "Code": code, "Message": message } })
            })
        })
        .collect();
    let kept: Vec<Value> = statements
        .into_iter()
        .zip(&withheld)
        .filter(|(_, w)| !**w)
        .map(|(s, _)| s)
        .collect();
    let withheld_count = withheld.iter().filter(|w| **w).count();
    let forward = (!kept.is_empty()).then(|| {
        request.insert("Statements".into(), Value::Array(kept));
        request
    });
    Some(Split {
        forward,
        withheld_count,
        merge: Box::new(move |mut answer| {
            let mut upstream = match answer.remove("Responses") {
                Some(Value::Array(responses)) => responses.into_iter(),
                _ => Vec::new().into_iter(),
            };
            let responses = errors
                .into_iter()
                .map(|error| match error {
                    Some(error) => error,
                    None => upstream.next().unwrap_or_else(|| json!({})),
                })
                .collect();
            answer.insert("Responses".into(), Value::Array(responses));
            answer
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_write_split_moves_entries_to_unprocessed() {
        let request = json!({
            "RequestItems": {
                "t1": [{"PutRequest": {"Item": {"id": {"S": "a"}}}},
                       {"PutRequest": {"Item": {"id": {"S": "b"}}}},
                       {"DeleteRequest": {"Key": {"id": {"S": "c"}}}}],
                "t2": [{"PutRequest": {"Item": {"id": {"S": "d"}}}}]
            },
            "ReturnConsumedCapacity": "TOTAL"
        });
        for seed in 0..50 {
            let Value::Object(request) = request.clone() else {
                unreachable!()
            };
            let split =
                split_batch_write(request, &mut fastrand::Rng::with_seed(seed)).expect("split");
            assert!(split.withheld_count >= 1);
            let forwarded = split.forward.as_ref().map_or(0, |f| {
                assert_eq!(f["ReturnConsumedCapacity"], "TOTAL");
                f["RequestItems"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|v| v.as_array().unwrap().len())
                    .sum()
            });
            assert_eq!(forwarded + split.withheld_count, 4);
            let answer = (split.merge)(Object::new());
            let unprocessed: usize = answer["UnprocessedItems"]
                .as_object()
                .unwrap()
                .values()
                .map(|v| v.as_array().unwrap().len())
                .sum();
            assert_eq!(unprocessed, split.withheld_count);
        }
    }

    #[test]
    fn statement_split_splices_errors_at_their_positions() {
        let statements: Vec<Value> = (0..5)
            .map(|i| json!({"Statement": format!("DELETE {i}")}))
            .collect();
        let request = json!({ "Statements": statements });
        let Value::Object(request) = request else {
            unreachable!()
        };
        let split = split_batch_statements(
            request,
            &mut fastrand::Rng::with_seed(7),
            super::super::Fault::PartialBatch,
        )
        .expect("split");
        let kept: Vec<Value> = split
            .forward
            .as_ref()
            .map(|f| f["Statements"].as_array().unwrap().clone())
            .unwrap_or_default();
        // The upstream answers one response per forwarded statement, tagged to check order.
        let answer = json!({
            "Responses": kept.iter().map(|s| json!({"Echo": s["Statement"]})).collect::<Vec<_>>()
        });
        let Value::Object(answer) = answer else {
            unreachable!()
        };
        let merged = (split.merge)(answer);
        let responses = merged["Responses"].as_array().unwrap();
        assert_eq!(responses.len(), 5);
        let mut errors = 0;
        for (i, response) in responses.iter().enumerate() {
            if let Some(code) = response["Error"]["Code"].as_str() {
                assert!(STATEMENT_ERRORS.iter().any(|(c, _)| *c == code));
                errors += 1;
            } else {
                assert_eq!(response["Echo"], format!("DELETE {i}"));
            }
        }
        assert_eq!(errors, split.withheld_count);
        assert_eq!(errors + kept.len(), 5);
    }
}

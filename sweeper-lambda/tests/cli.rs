//! The `sweeper` binary outside Lambda: flags in, one sweep against the embedded server,
//! the report as JSON on stdout.

use std::process::Command;

use dynamo_session_store::DynamoStore;
use dynamo_session_store::clock::{Clock, SystemClock};
use integration_tests::{put_request, session_item, write_batch};
use local_dynamodb::LocalDynamo;
use serde_json::Value;

fn sweeper() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sweeper"));
    // The binary must not think it runs in Lambda, nor pick up a table from the caller.
    command
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("SESSIONS_TABLE");
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn one_sweep_from_flags_prints_the_report() {
    let local = LocalDynamo::embedded().expect("embedded server");
    let endpoint = local.endpoint().unwrap().to_owned();
    let client = local.client().await;
    DynamoStore::new(client.clone(), "cli-sessions")
        .create_table()
        .await
        .unwrap();
    // Real time here: the binary uses the system clock. Expired a day ago, live for a day.
    let now = SystemClock.now().unix_timestamp();
    let items = [now - 86_400, now - 86_400, now - 86_400, now + 86_400]
        .into_iter()
        .enumerate()
        .map(|(i, expires)| put_request(session_item(&format!("s-{i}"), "{}", expires)));
    write_batch(&client, "cli-sessions", items.collect()).await;

    let run = |args: &[&str]| {
        let out = sweeper()
            .args(["--table", "cli-sessions", "--endpoint", &endpoint])
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (status, stdout, stderr) = run(&["--segments", "2", "--dry-run"]);
    assert!(status.success(), "{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect(&stdout);
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["expired_found"], 3);
    assert_eq!(report["deleted"], 0);
    assert_eq!(report["slice"], "0-2of2");

    let (status, stdout, stderr) = run(&["--segments", "2", "--emf"]);
    assert!(status.success(), "{stderr}");
    // With --emf the metrics line comes first, then the report.
    let (emf, report) = stdout.split_once('\n').unwrap();
    let emf: Value = serde_json::from_str(emf).unwrap();
    assert_eq!(emf["Deleted"], 3);
    assert_eq!(
        emf["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "SessionSweeper"
    );
    let report: Value = serde_json::from_str(report).unwrap();
    assert_eq!(report["deleted"], 3);
    assert_eq!(report["complete"], true);
    let left = client
        .scan()
        .table_name("cli-sessions")
        .send()
        .await
        .unwrap()
        .count;
    assert_eq!(left, 1);
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let out = sweeper()
        .args(["--table", "t", "--segments", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--segments"), "{stderr}");
    let out = sweeper().args(["--tabel", "t"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tabel"));
    let out = sweeper().arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--segments"));
}

#[test]
fn extreme_flags_exit_2_never_101() {
    // `--max-seconds u64::MAX` once overflowed an `Instant` and panicked (exit 101).
    for (flag, value) in [
        ("--max-seconds", "18446744073709551615"),
        ("--max-seconds", "2592001"),
        ("--max-seconds", "0"),
        ("--attempt-timeout-ms", "18446744073709551615"),
        ("--segments", "4294967295"),
        ("--key-prefix", "app"),
    ] {
        let out = sweeper()
            .args(["--table", "t", "--endpoint", "http://127.0.0.1:9"])
            .args([flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) || stderr.contains("prefix"),
            "{flag} {value}: {stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_table_exits_2_naming_the_setting() {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    let local = LocalDynamo::embedded().expect("embedded server");
    let endpoint = local.endpoint().unwrap().to_owned();
    let client = local.client().await;
    client
        .create_table()
        .table_name("keyed-pk")
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    for (table, words) in [
        ("keyed-pk", "its partition key is `pk`, not `id`"),
        ("no-such-table", "does not exist"),
    ] {
        let out = sweeper()
            .args(["--table", table, "--endpoint", &endpoint])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let line = stderr
            .lines()
            .find(|l| l.starts_with("sweeper: "))
            .unwrap_or_else(|| panic!("no error line in: {stderr}"));
        assert!(
            line.contains(&format!("table `{table}`")) && line.contains(words),
            "{line}"
        );
        assert!(!stderr.contains("Error {"), "{stderr}");
        assert!(
            out.stdout.is_empty(),
            "no report for a sweep that never ran"
        );
    }
}

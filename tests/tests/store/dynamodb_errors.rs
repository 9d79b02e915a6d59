//! A DynamoDB error keeps its real cause, not just "service error".

use super::*;

#[tokio::test]
async fn a_missing_table_error_keeps_its_real_cause() {
    let table = TestTable::new("no-table").await;
    let store = DynamoStore::new(table.client.clone(), format!("{}-missing", table.name));
    let err = store.get::<Value>("abc").await.unwrap_err();
    match &err {
        Error::DynamoDb {
            operation,
            code,
            transient,
            ..
        } => {
            assert_eq!(*operation, "GetItem");
            assert_eq!(code.as_deref(), Some("ResourceNotFoundException"));
            assert!(!transient);
        }
        other => panic!("expected DynamoDb, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("ResourceNotFoundException"), "{text}");
    assert_ne!(text.trim_end(), "DynamoDB GetItem failed: service error");
    // The cause is in the text once: no `source()` to walk again (anyhow's `{:#}` would
    // print the chain twice), while the SDK error stays reachable to downcast.
    assert!(std::error::Error::source(&err).is_none());
    let Error::DynamoDb { sdk_error, .. } = &err else {
        unreachable!()
    };
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::error::SdkError;
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    assert!(
        sdk_error
            .downcast_ref::<SdkError<GetItemError, HttpResponse>>()
            .is_some()
    );

    let err = store.put("abc", &json!({}), None).await.unwrap_err();
    assert!(
        err.to_string().contains("ResourceNotFoundException"),
        "{err}"
    );
    // Through the trait, as a backend error with the same text.
    let err = store.load(&Id::default()).await.unwrap_err();
    match err {
        session_store::Error::Backend(text) => {
            assert!(text.contains("ResourceNotFoundException"), "{text}")
        }
        other => panic!("expected Backend, got {other:?}"),
    }
}

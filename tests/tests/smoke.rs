//! The embedded server answers and the store round-trips a session.
use integration_tests::TestTable;
use serde_json::{Value, json};

#[tokio::test]
async fn put_get_round_trip_on_the_shared_endpoint() {
    let table = TestTable::new("smoke").await;
    let store = table.store();
    store.put("abc", &json!({"n": 1}), None).await.unwrap();
    let got = store.get::<Value>("abc").await.unwrap().unwrap();
    assert_eq!(got.data, json!({"n": 1}));
    assert_eq!(table.requests.count("PutItem"), 1);
}

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

use super::Writer;
use crate::error::StoreError;

/// A writer over a fresh file with one table `t (x)`, and the connection it writes through.
fn writer(dir: &std::path::Path) -> (Writer, Arc<Mutex<Connection>>) {
    let connection = super::super::schema::open(&dir.join("store.sqlite3")).expect("open");
    connection
        .execute_batch("CREATE TABLE t (x INTEGER NOT NULL)")
        .expect("table");
    let connection = Arc::new(Mutex::new(connection));
    (Writer::start(connection.clone()).expect("writer"), connection)
}

/// A write, boxed so that writes of different bodies queue in one test.
type Work = Box<dyn FnOnce(&Connection) -> Result<(), StoreError> + Send>;

fn insert(value: i64) -> impl FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static {
    move |db| {
        db.execute("INSERT INTO t (x) VALUES (?1)", [value])?;
        Ok(())
    }
}

fn values(connection: &Mutex<Connection>) -> Vec<i64> {
    let db = connection.lock().expect("lock");
    let mut statement = db.prepare("SELECT x FROM t ORDER BY x").expect("prepare");
    let rows = statement.query_map([], |row| row.get(0)).expect("query");
    rows.collect::<Result<_, _>>().expect("rows")
}

/// Sends `alone` while the test holds the connection, so that the writer takes it alone and
/// waits; then queues `batch` behind it, which the writer takes into one transaction once the
/// connection is let go. Answers every write's result, `alone`'s first.
#[allow(
    clippy::await_holding_lock,
    reason = "the test holds the connection to stall the writer"
)]
async fn stalled(
    writer: &Arc<Writer>,
    connection: &Mutex<Connection>,
    alone: Work,
    batch: Vec<Work>,
) -> Vec<Result<(), StoreError>> {
    let held = connection.lock().expect("lock");
    let spawn = |work: Work| {
        let writer = writer.clone();
        tokio::spawn(async move { writer.write(work).await })
    };
    let mut writes = vec![spawn(alone)];
    tokio::time::sleep(Duration::from_millis(100)).await;
    writes.extend(batch.into_iter().map(spawn));
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(held);
    let mut results = Vec::new();
    for write in writes {
        results.push(write.await.expect("join"));
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_waiting_together_share_a_transaction_and_a_refused_one_undoes_only_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (writer, connection) = writer(dir.path());
    let writer = Arc::new(writer);
    let refused: Work = Box::new(|db| {
        insert(3)(db)?;
        Err(StoreError::Conflict("refused after writing".into()))
    });
    let panicking: Work = Box::new(|db| {
        insert(5)(db)?;
        panic!("a bug in a write");
    });
    let batch = vec![Box::new(insert(2)) as Work, refused, Box::new(insert(4)), panicking];
    let results = stalled(&writer, &connection, Box::new(insert(1)), batch).await;
    assert_eq!(
        results[..4],
        [
            Ok(()),
            Ok(()),
            Err(StoreError::Conflict("refused after writing".into())),
            Ok(())
        ]
    );
    assert!(matches!(results[4], Err(StoreError::Internal(_))), "{results:?}");
    assert_eq!(
        values(&connection),
        [1, 2, 4],
        "the refused and the panicking write left no trace"
    );
    assert_eq!(writer.commits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_transaction_fails_fails_every_write_and_the_next_starts_clean() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (writer, connection) = writer(dir.path());
    let writer = Arc::new(writer);
    // The middle write ends its own savepoint: the writer's release of it then fails, and with
    // it the batch's transaction.
    let breaking: Work = Box::new(|db| {
        db.execute_batch("RELEASE op")?;
        Ok(())
    });
    let batch = vec![Box::new(insert(2)) as Work, breaking, Box::new(insert(3))];
    let results = stalled(&writer, &connection, Box::new(insert(1)), batch).await;
    assert_eq!(results[0], Ok(()));
    assert!(results[1..].iter().all(Result::is_err), "{results:?}");
    writer.write(insert(4)).await.expect("the next write");
    assert_eq!(values(&connection), [1, 4]);
}

#[tokio::test]
async fn a_refused_write_alone_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (writer, connection) = writer(dir.path());
    let refused = writer
        .write(|db| {
            insert(7)(db)?;
            Err::<(), _>(StoreError::InvalidInput("no".into()))
        })
        .await;
    assert_eq!(refused, Err(StoreError::InvalidInput("no".into())));
    assert_eq!(
        writer
            .write(|db| Ok(db.query_row("SELECT 40 + 2", [], |row| row.get::<_, i64>(0))?))
            .await,
        Ok(42)
    );
    assert!(values(&connection).is_empty());
    assert_eq!(writer.commits(), 1);
}

#[tokio::test]
async fn a_write_that_panics_is_undone_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (writer, connection) = writer(dir.path());
    let panicked = writer
        .write(|db| {
            insert(5)(db)?;
            panic!("a bug in a write");
        })
        .await;
    assert!(
        matches!(panicked, Err::<(), _>(StoreError::Internal(_))),
        "{panicked:?}"
    );
    writer.write(insert(6)).await.expect("the next write");
    assert_eq!(values(&connection), [6]);
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::await_holding_lock,
    reason = "the test holds the connection to stall the writer"
)]
async fn writes_waiting_together_share_a_transaction_and_a_refused_one_undoes_only_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (writer, connection) = writer(dir.path());
    let writer = Arc::new(writer);
    let held = connection.lock().expect("lock");
    let spawn = |work: Work| {
        let writer = writer.clone();
        tokio::spawn(async move { writer.write(work).await })
    };
    // The first write is taken alone and waits for the connection; the next three queue up
    // behind it, and go together once it is through; the refused and the panicking one leave no
    // trace.
    let first = spawn(Box::new(insert(1)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = spawn(Box::new(insert(2)));
    let refused = spawn(Box::new(|db: &Connection| {
        insert(3)(db)?;
        Err(StoreError::Conflict("refused after writing".into()))
    }));
    let fourth = spawn(Box::new(insert(4)));
    let panicking = spawn(Box::new(|db: &Connection| {
        insert(5)(db)?;
        panic!("a bug in a write");
    }));
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(held);
    assert_eq!(first.await.expect("join"), Ok(()));
    assert_eq!(second.await.expect("join"), Ok(()));
    assert_eq!(
        refused.await.expect("join"),
        Err(StoreError::Conflict("refused after writing".into()))
    );
    assert_eq!(fourth.await.expect("join"), Ok(()));
    let panicked = panicking.await.expect("join");
    assert!(matches!(panicked, Err(StoreError::Internal(_))), "{panicked:?}");
    assert_eq!(values(&connection), [1, 2, 4]);
    assert_eq!(writer.commits(), 2);
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

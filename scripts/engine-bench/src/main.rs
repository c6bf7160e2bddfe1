//! Group commit on the embedded engines: SQLite WAL (the node's backend, through Store, with
//! its background checkpointer) and LMDB (heed, synced commits), 1,000 accounts.
//!
//! `cd scripts/engine-bench && CARGO_TARGET_DIR=../../target cargo run --release -- 3`
//! (the argument: runs per engine and group size; the median is printed).
//! Each "batch" imitates one account batch of a transfer stage:
//! read the lease and an idempotency key, write the state (rewrite), a journal entry (append
//! under the account), an idempotency record (random key under the account), a saga record
//! and a pending entry (time-ordered global keys). Values of 60 bytes (the binary records).
//! A group of G batches is one transaction with one synced commit.
use node::storage::sqlite::{SqliteBackend, SyncMode};
use node::storage::{Store, Txn};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ACCOUNTS: u64 = 1000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::new();
    for p in parts {
        k.extend_from_slice(p);
        k.push(0);
    }
    k
}

/// The keys and values of one batch.
fn batch(
    rng: &mut Rng,
    seq: &mut u64,
    jseq: &mut [u64],
) -> (Vec<Vec<u8>>, Vec<(Vec<u8>, Vec<u8>)>) {
    let a = rng.next() % ACCOUNTS;
    let acct = format!("bench-{a:04}");
    *seq += 1;
    jseq[a as usize] += 1;
    let tid = format!("t_{:012x}{:020x}", *seq, rng.next() as u128);
    let idem = format!("{:016x}", rng.next());
    let v = vec![7u8; 60];
    let reads = vec![
        key(&[b"acct", acct.as_bytes(), b"lease"]),
        key(&[b"acct", acct.as_bytes(), b"idem", idem.as_bytes()]),
    ];
    let writes = vec![
        (key(&[b"acct", acct.as_bytes(), b"state"]), v.clone()),
        (
            key(&[
                b"acct",
                acct.as_bytes(),
                b"jrnl",
                &jseq[a as usize].to_be_bytes(),
            ]),
            v.clone(),
        ),
        (
            key(&[b"acct", acct.as_bytes(), b"idem", idem.as_bytes()]),
            v.clone(),
        ),
        (key(&[b"saga", tid.as_bytes(), acct.as_bytes()]), v.clone()),
        (key(&[b"pending", tid.as_bytes()]), v),
    ];
    (reads, writes)
}

fn run_sqlite(dir: &std::path::Path, group: usize, secs: f64) -> f64 {
    let store = Store::new(Arc::new(SqliteBackend::open(dir, SyncMode::Full).unwrap()));
    let (mut rng, mut seq, mut jseq) = (Rng(7), 0u64, vec![0u64; ACCOUNTS as usize]);
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < Duration::from_secs_f64(secs) {
        let batches: Vec<_> = (0..group)
            .map(|_| batch(&mut rng, &mut seq, &mut jseq))
            .collect();
        store
            .run(|txn: &mut dyn Txn| {
                for (reads, writes) in &batches {
                    for k in reads {
                        txn.get(k)?;
                    }
                    for (k, v) in writes {
                        txn.set(k, v)?;
                    }
                }
                Ok(())
            })
            .unwrap();
        done += group as u64;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn run_lmdb(dir: &std::path::Path, group: usize, secs: f64) -> f64 {
    let env = unsafe {
        heed::EnvOpenOptions::new()
            .map_size(8 << 30)
            .max_dbs(1)
            .open(dir)
            .unwrap()
    };
    let mut wtxn = env.write_txn().unwrap();
    let db: heed::Database<heed::types::Bytes, heed::types::Bytes> =
        env.create_database(&mut wtxn, None).unwrap();
    wtxn.commit().unwrap();
    let (mut rng, mut seq, mut jseq) = (Rng(7), 0u64, vec![0u64; ACCOUNTS as usize]);
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < Duration::from_secs_f64(secs) {
        let batches: Vec<_> = (0..group)
            .map(|_| batch(&mut rng, &mut seq, &mut jseq))
            .collect();
        let mut w = env.write_txn().unwrap();
        for (reads, writes) in &batches {
            for k in reads {
                let _ = db.get(&w, k).unwrap().map(|v| v.len());
            }
            for (k, v) in writes {
                db.put(&mut w, k, v).unwrap();
            }
        }
        w.commit().unwrap();
        done += group as u64;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(3);
    let secs = 3.0;
    println!("batches/s (each: 2 reads, 5 writes of 60 B), median of {rounds} interleaved runs of {secs} s");
    for group in [1usize, 16, 64, 256] {
        let (mut s, mut l) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let d = tempfile::tempdir_in("/tmp").unwrap();
            s.push(run_sqlite(d.path(), group, secs));
            let d = tempfile::tempdir_in("/tmp").unwrap();
            l.push(run_lmdb(d.path(), group, secs));
        }
        s.sort_by(|a, b| a.partial_cmp(b).unwrap());
        l.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "group {group:>4}: SQLite WAL FULL {:>8.0}  LMDB synced {:>8.0}   (runs: {:?} / {:?})",
            s[rounds / 2],
            l[rounds / 2],
            s.iter().map(|x| *x as u64).collect::<Vec<_>>(),
            l.iter().map(|x| *x as u64).collect::<Vec<_>>()
        );
    }
}

//! Identical requests in one input, found without holding a row per input
//! line in memory: a first pass over the input writes each request's
//! fingerprint into sorted runs on disk (256 Ki fingerprints, 2 MiB, at a
//! time) and merges them; only the fingerprints seen more than once are
//! kept. The batch then remembers which row sent each of those, and no
//! other: memory follows the number of duplicated requests, not the size of
//! the input.

use std::collections::{BinaryHeap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use api_entreprise::types;

use crate::input::Row;

/// Fingerprints sorted in memory before a run goes to disk.
const RUN: usize = 1 << 18;

/// The same request (endpoint, version, values, query, trace), the same
/// fingerprint.
pub fn fingerprint(r: &types::Request) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&r.endpoint, r.version, &r.params, &r.query).hash(&mut h);
    (&r.trace.context, &r.trace.recipient, &r.trace.object, &r.trace.user_id).hash(&mut h);
    h.finish()
}

/// The requests an input holds more than once, and its number of rows.
#[derive(Debug, Default, Clone)]
pub struct Duplicates {
    repeated: HashSet<u64>,
    /// Rows in the input.
    pub rows: u64,
}

impl Duplicates {
    /// Reads every row once.
    pub fn find(rows: impl Iterator<Item = Row>) -> std::io::Result<Self> {
        let mut runs = Vec::new();
        let mut chunk = Vec::with_capacity(RUN);
        let mut count = 0;
        for row in rows {
            count += 1;
            if let Ok(request) = &row.request {
                chunk.push(fingerprint(request));
            }
            if chunk.len() == RUN {
                runs.push(spill(&mut chunk)?);
            }
        }
        let mut repeated = HashSet::new();
        let mut note = |previous: Option<u64>, next: u64| {
            if previous == Some(next) {
                repeated.insert(next);
            }
        };
        if runs.is_empty() {
            chunk.sort_unstable();
            for pair in chunk.windows(2) {
                note(Some(pair[0]), pair[1]);
            }
        } else {
            if !chunk.is_empty() {
                runs.push(spill(&mut chunk)?);
            }
            let mut readers: Vec<BufReader<std::fs::File>> = runs.into_iter().map(BufReader::new).collect();
            let mut heap = BinaryHeap::new();
            for (i, reader) in readers.iter_mut().enumerate() {
                if let Some(v) = read(reader)? {
                    heap.push(std::cmp::Reverse((v, i)));
                }
            }
            let mut previous = None;
            while let Some(std::cmp::Reverse((v, i))) = heap.pop() {
                note(previous, v);
                previous = Some(v);
                if let Some(next) = read(&mut readers[i])? {
                    heap.push(std::cmp::Reverse((next, i)));
                }
            }
        }
        Ok(Self { repeated, rows: count })
    }

    /// Whether `fingerprint` is that of a request the input holds more than
    /// once.
    pub fn is_repeated(&self, fingerprint: u64) -> bool {
        self.repeated.contains(&fingerprint)
    }
}

/// Sorts `chunk` into an anonymous temporary file, read back from its start.
fn spill(chunk: &mut Vec<u64>) -> std::io::Result<std::fs::File> {
    chunk.sort_unstable();
    let mut file = tempfile::tempfile()?;
    {
        let mut out = BufWriter::new(&mut file);
        for v in chunk.iter() {
            out.write_all(&v.to_le_bytes())?;
        }
        out.flush()?;
    }
    file.seek(SeekFrom::Start(0))?;
    chunk.clear();
    Ok(file)
}

fn read(reader: &mut impl Read) -> std::io::Result<Option<u64>> {
    let mut bytes = [0u8; 8];
    match reader.read_exact(&mut bytes) {
        Ok(()) => Ok(Some(u64::from_le_bytes(bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(number: u64, value: &str) -> Row {
        Row {
            number,
            key: value.into(),
            request: Ok(types::Request {
                endpoint: "insee_etablissements".into(),
                version: None,
                params: vec![value.into()],
                query: vec![],
                trace: types::Trace {
                    context: "c".into(),
                    recipient: "r".into(),
                    object: "o".into(),
                    user_id: None,
                },
            }),
        }
    }

    #[test]
    fn repeated_requests_are_found_in_memory_and_through_runs_on_disk() {
        for n in [1_000u64, RUN as u64 * 2 + 17] {
            // Every 1000th value appears twice, far apart.
            let rows = (0..n)
                .map(|i| row(i, &i.to_string()))
                .chain((0..n).step_by(1000).map(|i| row(n + i, &i.to_string())));
            let found = Duplicates::find(rows).unwrap();
            let expected = n.div_ceil(1000);
            assert_eq!(found.repeated.len() as u64, expected, "{n} rows");
            assert_eq!(found.rows, n + expected);
            assert!(found.is_repeated(fingerprint(row(0, "0").request.as_ref().unwrap())));
            assert!(!found.is_repeated(fingerprint(row(0, "1").request.as_ref().unwrap())));
        }
    }
}

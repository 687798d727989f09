//! The output: one JSON line per input row, appended as each row is
//! answered (so in the order answers come, each line carrying its row
//! number), and the journal that makes a batch resumable. A line is written
//! whole with one `write` and synced to disk at least once a second; on
//! restart with the same output, the file is read back: the rows it holds
//! are not sent again, and a last line cut short by a crash is removed.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often what was written is synced to disk: a power cut loses at most
/// this much, and those rows are sent again on resume.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// The largest row number a batch numbers (a hundred million rows: at the
/// API's per-IP quota, more than a year of calls). A journal line beyond it
/// was not written by this command.
pub const MAX_ROW: u64 = 100_000_000;

/// Why the output cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Opening, reading or writing it failed.
    #[error("the output {path}: {error} (check that its folder exists and can be written)")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Another batch is writing it.
    #[error("another batch is writing {path} now: wait for it to end, or give another --output")]
    Busy {
        /// The file.
        path: PathBuf,
    },
    /// It holds a line that is not one of a batch's.
    #[error(
        "{path}, line {line}, is not a batch answer (no \"row\"): it is not this command's output; give another --output"
    )]
    Foreign {
        /// The file.
        path: PathBuf,
        /// The line's number.
        line: u64,
    },
    /// A line's row number is not one this command writes.
    #[error(
        "{path}, line {line}, answers row {row}, which is no row this command numbers (1 to {MAX_ROW}): the file was changed by hand or is not this command's output; give another --output"
    )]
    BadRow {
        /// The file.
        path: PathBuf,
        /// The line's number.
        line: u64,
        /// What it says.
        row: String,
    },
    /// The input has more rows than a batch numbers.
    #[error("the input has more than {MAX_ROW} rows: split it into several batches")]
    TooManyRows,
}

/// The output file, and which rows it already answers.
pub struct Output {
    path: PathBuf,
    file: File,
    done: RowSet,
    /// The rows answered `failed`: listed again in the retry file.
    failed: RowSet,
    last_sync: Instant,
    dirty: bool,
}

/// What an earlier run left in the output.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// Rows already answered.
    pub rows: u64,
    /// Bytes of a last line cut short, removed.
    pub cut_bytes: u64,
}

impl Output {
    /// Opens `path` for appending, creating it, after reading back what an
    /// earlier run wrote.
    pub fn open(path: &Path) -> Result<(Self, Resumed), OutputError> {
        let io = |error| OutputError::Io {
            path: path.to_owned(),
            error,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        // One batch at a time per output: two would both send the rows
        // missing from it. The lock goes with the process, crash included.
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(OutputError::Busy { path: path.to_owned() }),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut done = RowSet::default();
        let mut failed = RowSet::default();
        let mut whole = 0u64;
        let mut reader = BufReader::new(&mut file);
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            let read = reader.read_until(b'\n', &mut line).map_err(io)?;
            if read == 0 || line.last() != Some(&b'\n') {
                break;
            }
            number += 1;
            let value = serde_json::from_slice::<serde_json::Value>(&line)
                .ok()
                .filter(|v| !v["row"].is_null())
                .ok_or_else(|| OutputError::Foreign {
                    path: path.to_owned(),
                    line: number,
                })?;
            let row = value["row"]
                .as_u64()
                .filter(|r| (1..=MAX_ROW).contains(r))
                .ok_or_else(|| OutputError::BadRow {
                    path: path.to_owned(),
                    line: number,
                    row: value["row"].to_string(),
                })?;
            done.insert(row);
            if value["outcome"] == "failed" {
                failed.insert(row);
            }
            whole += read as u64;
        }
        drop(reader);
        let length = file.metadata().map_err(io)?.len();
        if length > whole {
            file.set_len(whole).map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        let resumed = Resumed {
            rows: done.len(),
            cut_bytes: length - whole,
        };
        let output = Self {
            path: path.to_owned(),
            file,
            done,
            failed,
            last_sync: Instant::now(),
            dirty: false,
        };
        Ok((output, resumed))
    }

    /// Whether row `number` is already answered.
    pub fn is_done(&self, number: u64) -> bool {
        self.done.contains(number)
    }

    /// Whether row `number` was answered `failed` by an earlier run.
    pub fn failed_before(&self, number: u64) -> bool {
        self.failed.contains(number)
    }

    /// Appends the answer of row `number` (whole, in one write): a JSON
    /// object of `fields` in their order (`row` and `key` first).
    pub fn write(&mut self, number: u64, fields: &[(&str, serde_json::Value)]) -> Result<(), OutputError> {
        if !(1..=MAX_ROW).contains(&number) {
            return Err(OutputError::TooManyRows);
        }
        let mut bytes = vec![b'{'];
        for (i, (name, value)) in fields.iter().enumerate() {
            if i > 0 {
                bytes.push(b',');
            }
            bytes.extend(serde_json::to_vec(name).unwrap_or_default());
            bytes.push(b':');
            bytes.extend(serde_json::to_vec(value).unwrap_or_default());
        }
        bytes.extend(b"}\n");
        self.file.write_all(&bytes).map_err(|error| OutputError::Io {
            path: self.path.clone(),
            error,
        })?;
        self.done.insert(number);
        self.dirty = true;
        if self.last_sync.elapsed() >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    /// Syncs what was written to disk.
    pub fn sync(&mut self) -> Result<(), OutputError> {
        if self.dirty {
            self.file.sync_data().map_err(|error| OutputError::Io {
                path: self.path.clone(),
                error,
            })?;
            self.dirty = false;
        }
        self.last_sync = Instant::now();
        Ok(())
    }
}

/// A set of row numbers, one bit each: 125 KB for a million rows.
#[derive(Debug, Default)]
struct RowSet {
    bits: Vec<u64>,
    len: u64,
}

impl RowSet {
    fn insert(&mut self, n: u64) {
        let (word, bit) = ((n / 64) as usize, n % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1 << bit) == 0 {
            self.bits[word] |= 1 << bit;
            self.len += 1;
        }
    }

    fn contains(&self, n: u64) -> bool {
        self.bits
            .get((n / 64) as usize)
            .is_some_and(|w| w & (1 << (n % 64)) != 0)
    }

    fn len(&self) -> u64 {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_cut_short_is_removed_and_the_rest_is_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "{\"row\":2,\"ok\":1}\n{\"row\":1}\n{\"row\":3,\"da").unwrap();
        let (mut output, resumed) = Output::open(&path).unwrap();
        assert_eq!(resumed, Resumed { rows: 2, cut_bytes: 12 });
        assert!(output.is_done(1) && output.is_done(2) && !output.is_done(3));
        output
            .write(
                3,
                &[
                    ("row", 3.into()),
                    ("key", "k".into()),
                    ("a", serde_json::json!({"z": 1, "b": 2})),
                ],
            )
            .unwrap();
        output.sync().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"row\":2,\"ok\":1}\n{\"row\":1}\n{\"row\":3,\"key\":\"k\",\"a\":{\"b\":2,\"z\":1}}\n"
        );
    }

    #[test]
    fn one_batch_at_a_time_writes_an_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let (first, _) = Output::open(&path).unwrap();
        let err = Output::open(&path).err().unwrap().to_string();
        assert!(err.contains("another batch is writing"), "{err}");
        drop(first);
        assert!(Output::open(&path).is_ok(), "free again once the first is gone");
    }

    #[test]
    fn a_line_whose_row_is_no_row_number_is_refused_with_a_message_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        for row in ["18446744073709551615", "0", "-3", "1.5", "\"7\"", "100000001"] {
            std::fs::write(&path, format!("{{\"row\":1}}\n{{\"row\":{row},\"key\":\"x\"}}\n")).unwrap();
            let err = Output::open(&path)
                .err()
                .unwrap_or_else(|| panic!("row {row} was taken"));
            let text = err.to_string();
            assert!(
                text.contains("line 2") && text.contains("give another --output"),
                "{row}: {text}"
            );
        }
    }

    #[test]
    fn the_rows_that_failed_are_known_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(
            &path,
            "{\"row\":1,\"outcome\":\"found\"}\n{\"row\":2,\"outcome\":\"failed\"}\n",
        )
        .unwrap();
        let (output, _) = Output::open(&path).unwrap();
        assert!(output.is_done(1) && !output.failed_before(1));
        assert!(output.is_done(2) && output.failed_before(2));
    }

    #[test]
    fn a_file_that_is_not_an_output_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.csv");
        std::fs::write(&path, "siret\n1\n").unwrap();
        let err = Output::open(&path).err().unwrap().to_string();
        assert!(err.contains("line 1, is not a batch answer"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "siret\n1\n", "left untouched");
    }

    #[test]
    fn the_row_set_counts_each_row_once() {
        let mut set = RowSet::default();
        for n in [1, 64, 1_000_000, 64] {
            set.insert(n);
        }
        assert_eq!(set.len(), 3);
        assert!(set.contains(1_000_000) && !set.contains(2));
    }
}

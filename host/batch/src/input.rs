//! The rows of a batch: a CSV file (with a header; columns mapped to the
//! path values, and optionally to the trace and query parameters) or JSON
//! lines (one request object a line, endpoints mixed), read one at a time
//! so that a million rows take no more memory than one.

use std::io::{BufRead, Read};

use api_entreprise::types;

/// A value taken from each row's column, or the same for every row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// The same value for every row.
    Fixed(String),
    /// The value of this column.
    Column(String),
}

/// How a CSV row becomes a request.
#[derive(Debug, Clone)]
pub struct CsvMapping {
    /// The endpoint every row calls.
    pub endpoint: String,
    /// Its version, or the newest non-deprecated one.
    pub version: Option<u8>,
    /// The columns of the path values, in the endpoint's order.
    pub columns: Vec<String>,
    /// The trace: `context`, `recipient`, `object`.
    pub trace: [Field; 3],
    /// `user_id`, if any.
    pub user_id: Option<Field>,
    /// Query parameters, by name.
    pub query: Vec<(String, Field)>,
}

/// The trace values a JSON line that leaves them out gets.
#[derive(Debug, Clone, Default)]
pub struct TraceDefaults {
    /// `context`, `recipient`, `object`.
    pub trace: [Option<String>; 3],
    /// `user_id`.
    pub user_id: Option<String>,
}

/// The input's format.
#[derive(Debug, Clone)]
pub enum Format {
    /// CSV with a header line.
    Csv(CsvMapping),
    /// One JSON request object a line.
    JsonLines(TraceDefaults),
}

/// One row of the input.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its number, from 1 (the CSV header is not a row; blank JSON lines
    /// are not rows).
    pub number: u64,
    /// What identifies it to a person: its path values joined by `/`, or a
    /// JSON line's `key`.
    pub key: String,
    /// The request, or why the row is not one (nothing is sent for it).
    pub request: Result<types::Request, String>,
}

/// Why the input cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The CSV header lacks a column the mapping names.
    #[error(
        "the CSV has no column `{missing}` (its columns: {found}): name the columns with --column and the --*-column flags"
    )]
    MissingColumn {
        /// The column.
        missing: String,
        /// The header's columns.
        found: String,
    },
    /// The header cannot be read.
    #[error("reading the CSV header: {0}")]
    Header(String),
}

/// The rows of `reader`, in order.
pub fn rows(
    reader: impl Read + Send + 'static,
    format: Format,
) -> Result<Box<dyn Iterator<Item = Row> + Send>, InputError> {
    match format {
        Format::Csv(mapping) => csv_rows(reader, mapping),
        Format::JsonLines(defaults) => Ok(Box::new(json_rows(reader, defaults))),
    }
}

fn csv_rows(
    reader: impl Read + Send + 'static,
    mapping: CsvMapping,
) -> Result<Box<dyn Iterator<Item = Row> + Send>, InputError> {
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let header: Vec<String> = csv
        .headers()
        .map_err(|e| InputError::Header(e.to_string()))?
        .iter()
        .map(str::to_owned)
        .collect();
    let index = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| InputError::MissingColumn {
                missing: name.to_owned(),
                found: header.join(", "),
            })
    };
    let resolve = |field: &Field| -> Result<Resolved, InputError> {
        Ok(match field {
            Field::Fixed(value) => Resolved::Fixed(value.clone()),
            Field::Column(name) => Resolved::Column(index(name)?, name.clone()),
        })
    };
    let columns = mapping
        .columns
        .iter()
        .map(|c| Ok((index(c)?, c.clone())))
        .collect::<Result<Vec<_>, InputError>>()?;
    let trace = [
        resolve(&mapping.trace[0])?,
        resolve(&mapping.trace[1])?,
        resolve(&mapping.trace[2])?,
    ];
    let user_id = mapping.user_id.as_ref().map(resolve).transpose()?;
    let query = mapping
        .query
        .iter()
        .map(|(name, field)| Ok((name.clone(), resolve(field)?)))
        .collect::<Result<Vec<_>, InputError>>()?;
    let (endpoint, version) = (mapping.endpoint, mapping.version);
    let mut number = 0;
    Ok(Box::new(csv.into_records().map(move |record| {
        number += 1;
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                return Row {
                    number,
                    key: String::new(),
                    request: Err(format!("the CSV line cannot be read: {e}")),
                };
            }
        };
        let cell = |i: usize, name: &str| {
            record
                .get(i)
                .map(str::to_owned)
                .ok_or_else(|| format!("the line has no column `{name}` (it has {} fields)", record.len()))
        };
        let value = |field: &Resolved| match field {
            Resolved::Fixed(v) => Ok(v.clone()),
            Resolved::Column(i, name) => cell(*i, name),
        };
        let params: Vec<Result<String, String>> = columns.iter().map(|(i, name)| cell(*i, name)).collect();
        let key = params.iter().flatten().cloned().collect::<Vec<_>>().join("/");
        let request = (|| {
            Ok(types::Request {
                endpoint: endpoint.clone(),
                version,
                params: params.into_iter().collect::<Result<_, _>>()?,
                query: query
                    .iter()
                    .map(|(name, field)| Ok((name.clone(), value(field)?)))
                    .collect::<Result<_, String>>()?,
                trace: types::Trace {
                    context: value(&trace[0])?,
                    recipient: value(&trace[1])?,
                    object: value(&trace[2])?,
                    user_id: user_id.as_ref().map(value).transpose()?,
                },
            })
        })();
        Row { number, key, request }
    })))
}

/// A field of the mapping, its column found in the header.
enum Resolved {
    Fixed(String),
    Column(usize, String),
}

fn json_rows(reader: impl Read + Send + 'static, defaults: TraceDefaults) -> impl Iterator<Item = Row> + Send {
    let mut number = 0;
    std::io::BufReader::new(reader).lines().filter_map(move |line| {
        let line = match line {
            Ok(line) if line.trim().is_empty() => return None,
            Ok(line) => line,
            Err(e) => {
                number += 1;
                return Some(Row {
                    number,
                    key: String::new(),
                    request: Err(format!("the line cannot be read: {e}")),
                });
            }
        };
        number += 1;
        Some(match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(value) => json_row(number, &value, &defaults),
            Err(e) => Row {
                number,
                key: String::new(),
                request: Err(format!("the line is not JSON: {e}")),
            },
        })
    })
}

/// One JSON line: `{"endpoint", "version"?, "params": [...], "query"?:
/// {name: value}, "context"?, "recipient"?, "object"?, "user_id"?, "key"?}`.
fn json_row(number: u64, value: &serde_json::Value, defaults: &TraceDefaults) -> Row {
    let params: Vec<String> = value["params"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let key = value["key"].as_str().map_or_else(|| params.join("/"), str::to_owned);
    let text = |name: &str, default: &Option<String>| {
        value[name]
            .as_str()
            .map(str::to_owned)
            .or_else(|| default.clone())
            .unwrap_or_default()
    };
    let request = (|| {
        let endpoint = value["endpoint"]
            .as_str()
            .ok_or("the line has no \"endpoint\"")?
            .to_owned();
        if !value["params"].is_array() {
            return Err("the line has no \"params\" list".to_owned());
        }
        let version = match &value["version"] {
            serde_json::Value::Null => None,
            v => Some(
                v.as_u64()
                    .and_then(|v| u8::try_from(v).ok())
                    .ok_or("\"version\" is not a small number")?,
            ),
        };
        let query = match &value["query"] {
            serde_json::Value::Null => Vec::new(),
            serde_json::Value::Object(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect(),
            _ => return Err("\"query\" is not an object of names and values".to_owned()),
        };
        Ok(types::Request {
            endpoint,
            version,
            params: params.clone(),
            query,
            trace: types::Trace {
                context: text("context", &defaults.trace[0]),
                recipient: text("recipient", &defaults.trace[1]),
                object: text("object", &defaults.trace[2]),
                user_id: value["user_id"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| defaults.user_id.clone()),
            },
        })
    })();
    Row { number, key, request }
}

/// A request as one JSON line of this module's own input format: what the
/// file of rows to retry holds.
pub fn to_json_line(key: &str, request: &types::Request) -> serde_json::Value {
    serde_json::json!({
        "key": key,
        "endpoint": request.endpoint,
        "version": request.version,
        "params": request.params,
        "query": request
            .query
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect::<serde_json::Map<_, _>>(),
        "context": request.trace.context,
        "recipient": request.trace.recipient,
        "object": request.trace.object,
        "user_id": request.trace.user_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> CsvMapping {
        CsvMapping {
            endpoint: "insee_etablissements".into(),
            version: None,
            columns: vec!["siret".into()],
            trace: [
                Field::Fixed("aides".into()),
                Field::Column("recipient".into()),
                Field::Fixed("dossier".into()),
            ],
            user_id: None,
            query: vec![],
        }
    }

    #[test]
    fn csv_rows_map_columns_and_name_their_faults() {
        let text = "siret,recipient\n55204944776279,13002526500013\n\"broken\n";
        let rows: Vec<Row> = rows(std::io::Cursor::new(text), Format::Csv(mapping()))
            .unwrap()
            .collect();
        assert_eq!(rows.len(), 2);
        let first = rows[0].request.as_ref().unwrap();
        assert_eq!((rows[0].number, rows[0].key.as_str()), (1, "55204944776279"));
        assert_eq!(first.params, ["55204944776279"]);
        assert_eq!(first.trace.recipient, "13002526500013");
        assert_eq!(first.trace.context, "aides");
        let err = rows[1].request.as_ref().unwrap_err();
        assert!(err.contains("no column `recipient`"), "{err}");
    }

    #[test]
    fn a_column_missing_from_the_header_is_named() {
        let err = rows(std::io::Cursor::new("siren\n1\n"), Format::Csv(mapping()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("no column `siret`") && err.contains("its columns: siren"),
            "{err}"
        );
    }

    #[test]
    fn json_lines_take_defaults_and_name_their_faults() {
        let text = concat!(
            r#"{"endpoint":"insee_unites_legales","params":["552049447"],"key":"sncf"}"#,
            "\n\n",
            "not json\n",
            r#"{"params":[]}"#,
            "\n",
            r#"{"endpoint":"x","params":["1"],"query":{"limit":"10"},"context":"mine"}"#,
            "\n"
        );
        let defaults = TraceDefaults {
            trace: [Some("aides".into()), Some("13002526500013".into()), Some("d".into())],
            user_id: None,
        };
        let rows: Vec<Row> = rows(std::io::Cursor::new(text), Format::JsonLines(defaults))
            .unwrap()
            .collect();
        assert_eq!(rows.iter().map(|r| r.number).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(rows[0].key, "sncf");
        assert_eq!(rows[0].request.as_ref().unwrap().trace.context, "aides");
        assert!(rows[1].request.as_ref().unwrap_err().contains("not JSON"));
        assert!(rows[2].request.as_ref().unwrap_err().contains("no \"endpoint\""));
        let last = rows[3].request.as_ref().unwrap();
        assert_eq!(last.trace.context, "mine");
        assert_eq!(last.query, [("limit".to_owned(), "10".to_owned())]);
    }
}
